"""The DIMSE status codes radai returns, in one table (PS3.7 Annex C, PS3.4 B.2.3, C.4).

C-STORE failures reuse :class:`radai.archive.parse.RejectReason`, whose values are
the Storage Service statuses (PS3.4 Table B.2-1), so that the archive's reasons and the
statuses on the wire cannot drift apart.
"""

from __future__ import annotations

import enum

from radai.archive.parse import RejectReason


class Status(enum.IntEnum):
    """DIMSE statuses of the services radai provides."""

    #: PS3.7 C.1.1: Success.
    SUCCESS = 0x0000
    #: PS3.4 C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.5: Pending, matches or sub-operations continue.
    PENDING = 0xFF00
    #: PS3.4 C.4.1.1.4: Cancel, matching terminated due to a C-CANCEL request.
    CANCEL = 0xFE00
    #: PS3.4 C.4.1.1.4: Refused: Out of Resources.
    OUT_OF_RESOURCES = 0xA700
    #: PS3.4 C.4.2.1.5 / C.4.3.1.5: Refused: Out of Resources, unable to calculate the
    #: number of matches.
    OUT_OF_RESOURCES_MATCHES = 0xA701
    #: PS3.4 C.4.2.1.5 / C.4.3.1.5: Refused: Out of Resources, unable to perform
    #: sub-operations (every sub-operation failed).
    OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702
    #: PS3.4 C.4.2.1.5: Refused: Move Destination unknown.
    MOVE_DESTINATION_UNKNOWN = 0xA801
    #: PS3.4 C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.5: Error: Identifier does not match SOP Class.
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    #: PS3.4 C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.5: Failed: Unable to process.
    UNABLE_TO_PROCESS = 0xC000
    #: PS3.4 C.4.2.1.5 / C.4.3.1.5: Warning: sub-operations complete, one or more failures.
    SUBOPERATIONS_COMPLETE_WITH_FAILURES = 0xB000


#: The C-STORE status of each reason an instance is refused (PS3.4 Table B.2-1).
STORE_STATUS: dict[RejectReason, int] = {reason: int(reason) for reason in RejectReason}


def status_class(status: int) -> str:
    """The status class of a status code (PS3.7 C.1-C.5): a fixed metric label value."""
    if status == Status.SUCCESS:
        return "success"
    if status in (Status.PENDING, 0xFF01):
        return "pending"
    if status == Status.CANCEL:
        return "cancel"
    if 0xB000 <= status <= 0xBFFF or status == 0x0107:  # 0x0107: attribute list error
        return "warning"
    return "failure"
