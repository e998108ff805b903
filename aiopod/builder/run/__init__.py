"""``RUN``: the command in an isolated root file system (a helper process), its mounts
(``RUN --mount``) and the user it runs as."""
