"""Users, roles, authentication and the append-only audit log.

- Users hold one or more roles (:mod:`radai.auth.roles`, where the role matrix lives).
  Passwords are Argon2id hashes (argon2-cffi), re-hashed at login when the configured
  parameters change.
- API clients get a bearer token from ``POST /api/v1/auth/token`` (OAuth2 password
  grant); browsers sign in on ``/login`` and get a session cookie (HttpOnly,
  SameSite=Lax, Secure when ``auth.cookie_secure``). Both are opaque random tokens
  stored only as SHA-256, with expiry and revocation (:mod:`radai.auth.service`).
- Every HTTP request is authenticated by :class:`radai.auth.middleware.AuthMiddleware`
  except ``/healthz``, the login/logout pages and the token endpoint; ``/metrics`` asks
  for a token too unless ``auth.metrics_access`` opens it to loopback. Routes ask for roles with
  :mod:`radai.auth.deps`.
- Reads of patient data are written to the append-only ``audit_log``
  (:func:`radai.auth.audit.record_access`).

This module imports nothing heavy: :mod:`radai.config` imports its settings.
"""
