"""Images from and to registries over the OCI distribution API (internal: not part of the
public API; use what :mod:`aiopod` exports).

* :mod:`~aiopod.transports.registry.endpoints`: what a pull reads an image from and a push
  writes it to, as two protocols (:class:`ImageSource`, :class:`ImageDestination`), so
  that the store side (``pull``/``push``) and the wire side (the registry client) meet in
  one place;
* the registry client, its configuration (``registries.conf``), credentials (auth files,
  ``login``/``logout``) and certificates (``certs.d``);
* ``pull`` and ``push``: an image's manifest, config and layers between the store and an
  :class:`ImageSource`/:class:`ImageDestination`.
"""
