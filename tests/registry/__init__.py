"""Registry tests: fake registries, the client, configuration, credentials, login."""
