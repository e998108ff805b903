"""Layers as buildah writes them: a Go-compatible tar encoder, the layer writer, snapshots
of a root file system and their differences, and the commit of a built image."""
