"""Tables of the vendor view: which studies each vendor account may see, and the pseudonym map."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from radai.db import Base, UTCDateTime, utcnow


class VendorGrant(Base):
    """One study a vendor account may see, de-identified; granted by an administrator."""

    __tablename__ = "vendor_grants"
    __table_args__ = (UniqueConstraint("user_id", "study_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The original Study Instance UID (vendors only ever see its pseudonym).
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PseudonymousUid(Base):
    """A pseudonymous UID handed to vendors and the original it stands for.

    A keyed HMAC cannot be inverted, so every pseudonym the view issues is written here
    to resolve it when it comes back in a request path or query. Rows are per key
    (``key_id`` is a fingerprint of the key, never the key): with a new key the old
    pseudonyms stop resolving. Only the view reads this table; no route shows it.
    """

    __tablename__ = "vendor_uid_map"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    original: Mapped[str] = mapped_column(String(64))
    #: ``study``, ``series`` or ``instance``.
    level: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
