"""Layers as buildah writes them: a Go-compatible tar header codec, the layer writer, the
layer of a ``COPY``/``ADD`` written from its plan, snapshots of a root file system and
their differences, and the commit of a built image."""
