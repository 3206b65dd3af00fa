"""Exporting a frozen dataset version: DICOM files, labels CSV, card (JSON, Markdown), manifest.

``radai datasets export NAME[@VERSION] DIR`` writes::

    DIR/dicom/<study>/<series>/<instance>.dcm   names are hashes of UIDs, never tag text
    DIR/labels.csv                              one row per study and finding
    DIR/card.json, DIR/card.md                  the dataset card
    DIR/manifest.json                           what the export holds, with SHA-256 of every file

By default the export is **de-identified** (radai.deid: PS3.15 Annex E Basic Application
Level Confidentiality Profile with the options of ``datasets.export_options``, keyed
pseudonyms from ``deid.key_file``/``deid.key`` or ``--key-file``): UIDs are replaced by
keyed pseudonyms, so the labels CSV and the manifest name studies by their
pseudonymised Study Instance UIDs and the hashes are those of the de-identified files;
the manifest cites the frozen version's manifest hash (``source_manifest_sha256``).
Subgroup values whose DICOM attributes the profile removes are left out (sex and age
band unless Retain Patient Characteristics, institution unless Retain Institution
Identity). An object that may carry burned-in text is refused by the profile, and then
nothing is exported.

With ``identified=True`` (``--identified``) the stored files are copied as they are and
the manifest is the frozen one, byte for byte.

Every stored file is checked against the manifest's SHA-256 first. The export is
written into a temporary folder beside ``DIR`` and renamed into place only when
complete, after its audit rows (action ``datasets.export``, or
``datasets.export.identified``, one per study, original Study Instance UIDs) are
committed; a failure leaves nothing behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import select

from radai.archive.models import Instance
from radai.archive.storage import FileStorage
from radai.auth.audit import ActorKind, Outcome, record_access
from radai.datasets.card import card_markdown
from radai.datasets.manifest import load_manifest
from radai.datasets.service import DatasetError, get_version, latest_frozen
from radai.db import Database
from radai.deid.engine import DeidentificationRefused, Profile, deidentify
from radai.deid.files import output_path
from radai.deid.options import Option
from radai.deid.pseudonym import PseudonymKey
from radai.quality.inputs import AGE_BAND, INSTITUTION, MANUFACTURER, SEX

#: Audit actions of exports.
ACTION_DEIDENTIFIED = "datasets.export"
ACTION_IDENTIFIED = "datasets.export.identified"
LABEL_CSV_COLUMNS = ("study_key", "study_instance_uid", "code_scheme", "code_value", "code_meaning", "label",
                     "method", "established_by")
_PROFILE_NAME = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    out_dir: Path
    dataset: str
    version: int
    studies: int
    files: int
    identified: bool
    manifest_sha256: str


def export_version(*, db: Database, storage: FileStorage, name: str, number: int | None, out_dir: Path,
                   actor: str, client: str, identified: bool = False, key: PseudonymKey | None = None,
                   profile: Profile | None = None,
                   on_file: Callable[[], None] | None = None) -> ExportResult:
    """Export a frozen version (the newest frozen one when ``number`` is None); see the module."""
    if not identified and (key is None or profile is None):
        raise DatasetError("a de-identified export needs a pseudonymisation key and a profile")
    with db.session() as s:
        version = (get_version(s, name=name, number=number) if number is not None
                   else latest_frozen(s, name=name))
        if not version.frozen:
            raise DatasetError(f"{name}@{version.number} is a draft; only frozen versions are exported")
        manifest = load_manifest(version)
        manifest_text, manifest_sha = version.manifest or "", version.manifest_sha256 or ""
        paths = _stored_paths(s, manifest)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"{out_dir} exists and is not an empty folder")
    partial = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        if identified:
            files = _copy_identified(storage, manifest, paths, partial, on_file)
            document_text = manifest_text
            document = manifest
        else:
            assert key is not None and profile is not None
            document, files = _deidentify(storage, manifest, paths, partial, key, profile, manifest_sha,
                                          on_file)
            document_text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
        _write_labels(partial / "labels.csv", document)
        (partial / "card.json").write_text(json.dumps(document["card"], indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        (partial / "card.md").write_text(card_markdown(document["card"], manifest_sha256=manifest_sha),
                                         encoding="utf-8")
        (partial / "manifest.json").write_text(document_text, encoding="utf-8")
        record_access(db, actor=actor, action=ACTION_IDENTIFIED if identified else ACTION_DEIDENTIFIED,
                      study_uid=[str(st["study_instance_uid"]) for st in manifest["studies"]], client=client,
                      outcome=Outcome.ALLOWED, actor_kind=ActorKind.USER)
        if out_dir.exists():
            out_dir.rmdir()
        partial.replace(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExportResult(out_dir=out_dir, dataset=name, version=int(manifest["version"]),
                        studies=len(manifest["studies"]), files=files, identified=identified,
                        manifest_sha256=manifest_sha)


def _stored_paths(session: Any, manifest: Mapping[str, Any]) -> dict[str, str]:
    uids = [str(i["sop_instance_uid"]) for st in manifest["studies"] for i in st["instances"]]
    found: dict[str, str] = {}
    for start in range(0, len(uids), 500):
        chunk = uids[start:start + 500]
        found.update(session.execute(select(Instance.sop_instance_uid, Instance.path)
                                     .where(Instance.sop_instance_uid.in_(chunk))).all())
    return found


def _checked_bytes(storage: FileStorage, paths: Mapping[str, str], study: Mapping[str, Any],
                   instance: Mapping[str, Any]) -> bytes:
    relative = paths.get(str(instance["sop_instance_uid"]))
    try:
        data = storage.read(relative) if relative is not None else None
    except OSError:
        data = None
    if data is None:
        raise DatasetError(f"study {study['key']}: an instance of the frozen version is no longer stored")
    if hashlib.sha256(data).hexdigest() != instance["sha256"]:
        raise DatasetError(f"study {study['key']}: a stored file differs from the SHA-256 in the manifest")
    return data


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _copy_identified(storage: FileStorage, manifest: Mapping[str, Any], paths: Mapping[str, str], out: Path,
                     on_file: Callable[[], None] | None) -> int:
    files = 0
    for study in manifest["studies"]:
        for inst in study["instances"]:
            data = _checked_bytes(storage, paths, study, inst)
            _write(output_path(out / "dicom", study["study_instance_uid"], inst["series_instance_uid"],
                               inst["sop_instance_uid"]), data)
            files += 1
            if on_file is not None:
                on_file()
    return files


def _deidentify(storage: FileStorage, manifest: Mapping[str, Any], paths: Mapping[str, str], out: Path,
                key: PseudonymKey, profile: Profile, source_sha: str,
                on_file: Callable[[], None] | None) -> tuple[dict[str, Any], int]:
    studies = []
    refused: list[str] = []
    files = 0
    keep = _kept_subgroups(profile)
    for study in manifest["studies"]:
        new_study_uid: str | None = None
        instances = []
        for inst in study["instances"]:
            data = _checked_bytes(storage, paths, study, inst)
            try:
                clean = deidentify(dcmread(io.BytesIO(data)), profile=profile, key=key)
            except DeidentificationRefused as exc:
                refused.append(f"study {study['key']}: {exc}")
                continue
            except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
                # The library's message may quote a value from the file: only its kind is shown.
                raise DatasetError(f"study {study['key']}: an instance cannot be de-identified "
                                   f"({type(exc).__name__})") from None
            buf = io.BytesIO()
            clean.save_as(buf, enforce_file_format=True)
            encoded = buf.getvalue()
            new_study_uid = str(clean.StudyInstanceUID)
            _write(output_path(out / "dicom", new_study_uid, str(clean.SeriesInstanceUID),
                               str(clean.SOPInstanceUID)), encoded)
            instances.append({"sop_instance_uid": str(clean.SOPInstanceUID),
                              "sop_class_uid": inst["sop_class_uid"],
                              "series_instance_uid": str(clean.SeriesInstanceUID),
                              "sha256": hashlib.sha256(encoded).hexdigest(), "size": len(encoded)})
            files += 1
            if on_file is not None:
                on_file()
        studies.append({**study, "study_instance_uid": new_study_uid or key.uid(study["study_instance_uid"]),
                        "instances": instances,
                        "subgroups": {k: v for k, v in study["subgroups"].items() if k in keep}})
    if refused:
        shown = "; ".join(refused[:3]) + ("; …" if len(refused) > 3 else "")
        raise DatasetError(f"nothing exported: {len(refused)} instance(s) refused by de-identification "
                           f"({shown})")
    card = dict(manifest["card"])
    card["subgroups"] = {k: v for k, v in card["subgroups"].items() if k in keep}
    document = {
        **{k: v for k, v in manifest.items() if k not in ("studies", "card")},
        "card": card,
        "studies": studies,
        "deidentified": True,
        "deidentification": {"profile": _PROFILE_NAME,
                             "options": sorted(o.cli_name for o in profile.options),
                             "pseudonyms": "keyed (HMAC-SHA-256); the key is not part of the export"},
        "source_manifest_sha256": source_sha,
    }
    return document, files


def _kept_subgroups(profile: Profile) -> set[str]:
    """Subgroup values whose DICOM source the profile keeps (manufacturer is not in Table E.1-1)."""
    keep = {MANUFACTURER}
    if Option.RETAIN_PATIENT_CHARACTERISTICS in profile.options:
        keep |= {SEX, AGE_BAND}
    if Option.RETAIN_INSTITUTION_IDENTITY in profile.options:
        keep.add(INSTITUTION)
    return keep


def _write_labels(path: Path, manifest: Mapping[str, Any]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(LABEL_CSV_COLUMNS)
    for study in manifest["studies"]:
        for lab in study["labels"]:
            writer.writerow([study["key"], study["study_instance_uid"], lab["scheme"], lab["value"],
                             lab["meaning"], lab["label"], lab["method"], lab["established_by"]])
    path.write_text(buf.getvalue(), encoding="utf-8")

