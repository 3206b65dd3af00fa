"""The storage SOP classes radai accepts (PS3.4 Annex B.5), retired ones included.

Modalities in service still send retired classes (e.g. the retired Ultrasound Image
Storage 1.2.840.10008.5.1.4.1.1.6), so both pynetdicom's current list and pydicom's
dictionary of retired storage classes are accepted.
"""

from __future__ import annotations

from functools import cache

from pydicom._uid_dict import UID_dictionary
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

#: Storage-like names in the UID dictionary that are not composite object storage.
_NOT_STORAGE = ("Commitment", "Directory", "Service Class", "Transfer Syntax")


@cache
def storage_sop_classes() -> frozenset[str]:
    """Every storage SOP class UID radai accepts."""
    uids = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts}
    for uid, (name, kind, *_rest) in UID_dictionary.items():
        if kind != "SOP Class":
            continue
        if uid_to_service_class(uid) is StorageServiceClass or (
            "Storage" in name and not any(word in name for word in _NOT_STORAGE)
        ):
            uids.add(str(uid))
    return frozenset(uids)


def is_storage_sop_class(uid: str) -> bool:
    """Whether ``uid`` is a storage SOP class radai accepts."""
    return uid in storage_sop_classes()
