"""``radai import``: store the DICOM files found in files and folders."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from radai.archive.indexer import IndexOutcome
from radai.archive.parse import Rejection
from radai.archive.service import Archive, iter_files


@dataclass
class ImportSummary:
    """What an import did."""

    stored: int = 0
    duplicates: int = 0
    #: (file, reason) for every file not stored.
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)

    @property
    def rejected_by_reason(self) -> Counter[str]:
        """How many files were refused for each reason."""
        return Counter(reason for _, reason in self.rejected)


def import_paths(archive: Archive, paths: Iterable[Path], *, source: str = "import",
                 on_file: Callable[[Path], None] | None = None) -> ImportSummary:
    """Store every file below ``paths``; refused files are listed with their reason."""
    summary = ImportSummary()
    for path in iter_files(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            summary.rejected.append((path, f"cannot be read ({exc.strerror})"))
        else:
            try:
                outcome = archive.store(data, source=source)
            except Rejection as rej:
                summary.rejected.append((path, rej.message))
            else:
                summary.studies.add(outcome.study_instance_uid)
                if outcome.outcome is IndexOutcome.STORED:
                    summary.stored += 1
                else:
                    summary.duplicates += 1
        if on_file is not None:
            on_file(path)
    return summary
