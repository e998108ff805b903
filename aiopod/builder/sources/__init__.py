"""What ``COPY`` and ``ADD`` copy: the build context and its ignore rules, URLs and
heredocs made into files, where each source goes (the destination in the image and the
plan of the layer), and buildah's content digest of them."""
