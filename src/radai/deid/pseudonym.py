"""Keyed pseudonyms: the same input and key always give the same UID, identifier and date shift.

Everything is an HMAC-SHA-256 (RFC 2104) of the original value under the key, with a
purpose label so that a UID and an identifier with the same text never map alike.
Without the key the original values cannot be recovered or confirmed by guessing, so
the key must never travel with de-identified data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

#: Shorter keys are refused; 32 random bytes (``head -c 32 /dev/urandom``) is the advice.
MIN_KEY_BYTES = 16
#: Dates move back by 1..MAX_SHIFT_DAYS whole days (one offset per patient).
MAX_SHIFT_DAYS = 3650


class PseudonymKey:
    """The secret behind every pseudonym; built from bytes, a file, or a configured secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"the de-identification key must be at least {MIN_KEY_BYTES} bytes long")
        self._secret = bytes(secret)

    @classmethod
    def from_file(cls, path: Path) -> PseudonymKey:
        """The key held in ``path`` (its bytes, without a trailing newline)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the key file {path}: {exc.strerror}") from None
        return cls(data.rstrip(b"\r\n"))

    def __repr__(self) -> str:
        return "PseudonymKey(<secret>)"

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA-256 of ``value`` for ``purpose``."""
        message = purpose.encode() + b"\x1f" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def uid(self, uid: str) -> str:
        """The pseudonymous UID for ``uid``: ``2.25.`` and a UUID as an integer (PS3.5 B.2).

        The UUID is built from the HMAC as an RFC 9562 version 8 (custom) UUID, so the
        result is a valid UUID-derived UID of at most 44 characters (PS3.5 9.1 allows 64).
        """
        raw = bytearray(self.digest("uid", uid.strip("\x00 "))[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122/9562 variant
        return f"2.25.{int.from_bytes(raw, 'big')}"

    def identifier(self, purpose: str, value: str, length: int = 16) -> str:
        """A pseudonymous identifier of ``length`` characters from A-Z and 2-7 (valid in SH and LO)."""
        text = base64.b32encode(self.digest(purpose, value)).decode("ascii").rstrip("=")
        return text[:length]

    def date_shift_days(self, patient_identity: str) -> int:
        """The patient's date offset, -1 to -MAX_SHIFT_DAYS days (PS3.15 E.3.6, modified dates)."""
        number = int.from_bytes(self.digest("date-shift", patient_identity)[:8], "big")
        return -(1 + number % MAX_SHIFT_DAYS)
