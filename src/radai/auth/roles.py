"""Roles and the role matrix: who may do what, as data in one place.

A user holds one or more roles. Routes never name roles directly where a capability
fits: they ask for a :class:`Capability`, and :data:`ROLE_MATRIX` says which roles
grant it.

=================  =====  ===========  =========  ======  =======
capability         admin  radiologist  annotator  vendor  auditor
=================  =====  ===========  =========  ======  =======
read_studies         x         x           x
store_studies        x         x
review                         x
annotate                       x           x
manage_models        x
manage_users         x
read_audit           x                                       x
vendor_view          x                                x
view_metrics         x                                       x
=================  =====  ===========  =========  ======  =======

- ``read_studies``: identified patient data — images and metadata over DICOMweb, the
  worklist, findings and results, viewer pages. Annotators are readers inside the
  clinical zone and need the images they label. Vendors and auditors never see
  identified data.
- ``store_studies``: send instances into radai over HTTP (STOW-RS); DICOMweb routes
  need it on top of ``read_studies`` for requests that change state. (Modalities and
  PACS usually send over DIMSE, allow-listed by AE title.)
- ``review``: record verdicts on AI findings and sign reports.
- ``annotate``: work on annotation tasks and record labels.
- ``manage_models``: import, enable, disable and route models; start validation runs.
- ``manage_users``: create users, set passwords, disable accounts.
- ``read_audit``: view and export the audit log (which holds study UIDs, so it is
  itself access-controlled and every view or export is audited).
- ``vendor_view``: the de-identified views offered to outside model vendors
  (PS3.15 Annex E de-identified data only).
- ``view_metrics``: read ``/metrics`` (see AuthSettings.metrics_access).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Role(enum.StrEnum):
    """The roles a user may hold."""

    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    ANNOTATOR = "annotator"
    VENDOR = "vendor"
    AUDITOR = "auditor"


class Capability(enum.StrEnum):
    """Things a user may be allowed to do; granted by roles through :data:`ROLE_MATRIX`."""

    READ_STUDIES = "read_studies"
    STORE_STUDIES = "store_studies"
    REVIEW = "review"
    ANNOTATE = "annotate"
    MANAGE_MODELS = "manage_models"
    MANAGE_USERS = "manage_users"
    READ_AUDIT = "read_audit"
    VENDOR_VIEW = "vendor_view"
    VIEW_METRICS = "view_metrics"


_A, _R, _N, _V, _U = Role.ADMIN, Role.RADIOLOGIST, Role.ANNOTATOR, Role.VENDOR, Role.AUDITOR

#: Capability → the roles that grant it (the table in this module's docstring).
ROLE_MATRIX: dict[Capability, frozenset[Role]] = {
    Capability.READ_STUDIES: frozenset({_A, _R, _N}),
    Capability.STORE_STUDIES: frozenset({_A, _R}),
    Capability.REVIEW: frozenset({_R}),
    Capability.ANNOTATE: frozenset({_R, _N}),
    Capability.MANAGE_MODELS: frozenset({_A}),
    Capability.MANAGE_USERS: frozenset({_A}),
    Capability.READ_AUDIT: frozenset({_A, _U}),
    Capability.VENDOR_VIEW: frozenset({_A, _V}),
    Capability.VIEW_METRICS: frozenset({_A, _U}),
}

#: Capabilities whose routes serve identified patient data: denied attempts on them are
#: written to the audit log.
PATIENT_DATA_CAPABILITIES = frozenset({Capability.READ_STUDIES, Capability.STORE_STUDIES,
                                       Capability.REVIEW, Capability.ANNOTATE})


def capabilities_of(roles: Iterable[Role]) -> frozenset[Capability]:
    """Every capability granted by at least one of ``roles``."""
    held = set(roles)
    return frozenset(cap for cap, granted in ROLE_MATRIX.items() if granted & held)


def parse_role(value: str) -> Role:
    """The :class:`Role` named ``value``; ``ValueError`` listing the valid roles otherwise."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role; valid roles are {', '.join(r.value for r in Role)}") from None
