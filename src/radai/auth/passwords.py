"""Password hashing with Argon2id (argon2-cffi, RFC 9106)."""

from __future__ import annotations

import secrets
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from radai.auth.settings import AuthSettings


class Passwords:
    """Hashes and verifies passwords with the configured Argon2id parameters."""

    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self.min_length = settings.password_min_length

    @cached_property
    def _decoy(self) -> str:
        # Verified against when the user name is unknown, so that an unknown name costs
        # the same time as a wrong password and does not reveal which names exist.
        return self._hasher.hash(secrets.token_urlsafe(16))

    def check_policy(self, password: str) -> None:
        """Raise ``ValueError`` when ``password`` is too short or blank."""
        if len(password) < self.min_length or not password.strip():
            raise ValueError(f"password must be at least {self.min_length} characters long")

    def hash(self, password: str) -> str:
        """An Argon2id hash of ``password`` (PHC string with its salt and parameters)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``None`` runs a decoy verification and fails."""
        try:
            self._hasher.verify(password_hash or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the configured ones."""
        return self._hasher.check_needs_rehash(password_hash)
