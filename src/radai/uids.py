"""radai's own UIDs and UID derivation (PS3.5 §9 and Annex B.2, UUID-derived UIDs)."""

from __future__ import annotations

import uuid

#: radai's Implementation Class UID (PS3.7 D.3.3.2), a UUID-derived UID (PS3.5 B.2).
IMPLEMENTATION_CLASS_UID = "2.25.291577065797898708134315201169938766508"
#: Implementation Version Name (PS3.7 D.3.3.2.2), at most 16 characters.
IMPLEMENTATION_VERSION_NAME = "RADAI_0_1_0"

_NAMESPACE = uuid.UUID(int=291577065797898708134315201169938766508)


def derived_uid(*parts: str) -> str:
    """A UID that is always the same for the same ``parts`` (PS3.5 B.2, UUID version 5).

    Used where re-running the same work must give the same UID (results derived from a
    source series and a model, for instance), so that nothing is stored twice.
    """
    name = "\x1f".join(parts)
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"


def new_uid() -> str:
    """A new unique UID (PS3.5 B.2, UUID version 4)."""
    return f"2.25.{uuid.uuid4().int}"
