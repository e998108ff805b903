"""Dockerfile builds into the store: parsing, variable expansion and (to come) the builder.

:mod:`aiopod.build.parser` turns a Dockerfile into stages of instructions, and
:mod:`aiopod.build.words` expands variables and splits words as Docker does. Both follow
Docker's current rules, heredocs included, which buildah 1.28 does not support.
"""
