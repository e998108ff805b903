"""The Dockerfile: parsing, variable expansion and word splitting, and what the metadata
instructions do to an image config."""
