"""The exchange formats: docker-archive, oci-archive and OCI layout directories, read into
the store and written from it.

Internal: not part of the public API (use what :mod:`aiopod` exports); its modules may
change without notice.
"""
