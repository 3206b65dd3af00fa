"""De-identify files and folders into an output folder whose paths say nothing about the patient.

Output paths are ``<study>/<series>/<instance>.dcm`` where each part is a short hash of
the *pseudonymised* UID: nothing of the input's names or tag text reaches the output
tree. The input→output mapping is written only when asked, to a file the caller names.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radai.deid.engine import DeidentificationRefused, Profile, deidentify
from radai.deid.pseudonym import PseudonymKey
from radai.logs import uid_ref

log = logging.getLogger(__name__)

_PATH_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass
class TreeReport:
    """What happened to each input file."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_dicom: list[Path] = field(default_factory=list)
    #: Files carrying a SOP Instance UID already written in this run (the same instance
    #: in another encoding, PS3.3 C.12.1.1.1): the first one is kept.
    duplicates: list[Path] = field(default_factory=list)


def output_path(out_dir: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """Where a de-identified instance goes: hashes of its (already pseudonymised) UIDs."""
    return out_dir / uid_ref(study_uid) / uid_ref(series_uid) / f"{uid_ref(sop_uid)}.dcm"


def iter_files(paths: list[Path], *, skip: Path | None = None) -> Iterator[Path]:
    """Every file under ``paths``, recursively and in a stable order, skipping the folder ``skip``."""
    for root in paths:
        if root.is_file():
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if skip is None or (here / d).resolve() != skip)
            for name in sorted(filenames):
                yield here / name


def deidentify_tree(
    inputs: list[Path],
    out_dir: Path,
    *,
    profile: Profile,
    key: PseudonymKey,
    mapping_file: Path | None = None,
) -> TreeReport:
    """De-identify every DICOM file under ``inputs`` into ``out_dir`` (PS3.15 Annex E).

    Files are written whole or not at all (a temporary file renamed into place).
    Non-DICOM files are skipped; objects refused for burned-in annotation are listed.
    """
    report = TreeReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = out_dir.resolve()
    seen: set[Path] = set()
    for path in iter_files(inputs, skip=skip):
        try:
            ds = dcmread(path)
        except (InvalidDicomError, EOFError):
            report.not_dicom.append(path)
            continue
        except (OSError, ValueError, KeyError) as exc:
            report.failed.append((path, f"unreadable: {type(exc).__name__}"))
            continue
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            report.failed.append(
                (
                    path,
                    "not a storable instance: no SOP Class UID (0008,0016) or SOP Instance UID (0008,0018)",
                )
            )
            continue
        try:
            clean = deidentify(ds, profile=profile, key=key)
        except DeidentificationRefused as exc:
            report.refused.append((path, str(exc)))
            continue
        except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
            # The library's message may quote a value from the file: only its kind is shown.
            report.failed.append((path, f"cannot de-identify: {type(exc).__name__}"))
            continue
        data = _encode(clean)
        # An object without UIDs is named by the hash of its de-identified bytes instead.
        fallback = hashlib.sha256(data).hexdigest()
        target = output_path(out_dir, *(str(clean.get(k, "") or fallback) for k in _PATH_UIDS))
        if target in seen:
            report.duplicates.append(path)
            continue
        seen.add(target)
        _write(data, target)
        log.debug("de-identified instance %s", uid_ref(str(clean.get("SOPInstanceUID", ""))))
        report.written.append((path, target))
    if mapping_file is not None:
        _write_mapping(mapping_file, report, out_dir)
    return report


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _write(data: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_mapping(mapping_file: Path, report: TreeReport, out_dir: Path) -> None:
    """input path, output path (relative to the output folder) — identifying, so only on request."""
    with mapping_file.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["input", "output"])
        for source, target in report.written:
            writer.writerow([str(source), str(target.relative_to(out_dir))])
