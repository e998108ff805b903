"""Image removal: pure planners, one per policy (``libpod``, ``podman``, ``docker``, and
``prune``), the plan and report they share, and the executor that applies a plan.

Internal: not part of the public API (use what :mod:`aiopod` exports); its modules may
change without notice.
"""
