"""The auth tests' app and clients (real users, tokens and sessions), reused by the worklist tests."""

from tests.auth.conftest import app, auth_radai, client, user_headers

__all__ = ["app", "auth_radai", "client", "user_headers"]
