"""The auth tests' app and clients, reused for UI pages."""

from tests.auth.conftest import app, auth_radai, client, user_headers

__all__ = ["app", "auth_radai", "client", "user_headers"]
