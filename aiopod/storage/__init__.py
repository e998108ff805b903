"""The store on disk: blobs, layers, image and container records, the lock, atomic
metadata, recovery, check and repair, and layers applied without escaping their root.

Internal: not part of the public API (use what :mod:`aiopod` exports); its modules may
change without notice.
"""
