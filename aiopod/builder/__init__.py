"""Dockerfile builds into the store (libpod's ``Build``), as a pipeline of sub-packages.

Internal: not part of the public API (use what :mod:`aiopod` exports); its modules may
change without notice.

* :mod:`aiopod.builder.dockerfile`: the Dockerfile read into stages of instructions, with
  Docker's variable expansion and word splitting, and what metadata instructions do to
  an image config;
* :mod:`aiopod.builder.sources`: what ``COPY``/``ADD`` copy: the build context and its
  ignore rules, downloaded URLs and heredocs, the copy plan, buildah's content digest;
* :mod:`aiopod.builder.layers`: layers written as buildah writes them (a Go-compatible tar
  encoder), snapshots of a root file system, and the commit of an image;
* :mod:`aiopod.builder.run`: ``RUN`` in an isolated root file system, its mounts, users;
* the build itself: :mod:`~aiopod.builder.executor` drives the stages
  (:mod:`~aiopod.builder.stages`) and steps, through a :mod:`~aiopod.builder.session`
  that step handlers such as :mod:`~aiopod.builder.copying` use, and reuses earlier steps
  through the :mod:`~aiopod.builder.layer_cache`; :mod:`~aiopod.builder.progress` reports.
"""
