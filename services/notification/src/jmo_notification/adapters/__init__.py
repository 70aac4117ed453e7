"""Providers (SMTP, SMS over HTTP) and the service's own collections (contact directory, delivery claims)."""
