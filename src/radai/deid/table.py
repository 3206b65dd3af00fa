"""PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes), read from data/.

The table is data, vendored with its provenance (data/README.md); this module only
reads it and answers "which action applies to this tag under these options".
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files

from pydicom.tag import BaseTag

from radai.deid.options import Option

#: The action codes of Table E.1-1a (PS3.15 E.1.1).
ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
PRIVATE_ROW = "(gggg,eeee) where gggg is odd"
_TAG = re.compile(r"^\(([0-9A-F]{4}),([0-9A-F]{4})\)$")
_MASKED = re.compile(r"^\(([0-9A-F]{2})xx,(xxxx|[0-9A-F]{4})\)$")


@dataclass(frozen=True)
class ProfileRow:
    """One row of Table E.1-1."""

    tag: str
    name: str
    basic: str
    #: Option column heading -> action code, for the columns that have one.
    options: Mapping[str, str]
    #: Which package the option cells were taken from (see data/README.md).
    options_from: str

    def action(self, options: Iterable[Option]) -> str:
        """The action for this row under ``options`` (PS3.15 E.3).

        An option that has a cell in this row replaces the Basic Profile's action. Where
        two chosen options both have cells, a retain option (K) wins over a clean one (C):
        a retain option names exactly the information the user asked to keep.
        """
        chosen = [self.options[o.column] for o in options if o.column and o.column in self.options]
        if "K" in chosen:
            return "K"
        if chosen:
            return chosen[0]
        return self.basic


@dataclass(frozen=True)
class ProfileTable:
    """All rows of Table E.1-1, indexed for lookup by tag."""

    rows: tuple[ProfileRow, ...]
    edition: str

    @functools.cached_property
    def _by_tag(self) -> dict[int, ProfileRow]:
        out: dict[int, ProfileRow] = {}
        for row in self.rows:
            match = _TAG.match(row.tag)
            if match:
                out[int(match.group(1) + match.group(2), 16)] = row
        return out

    @functools.cached_property
    def _masked(self) -> list[tuple[int, int | None, ProfileRow]]:
        out: list[tuple[int, int | None, ProfileRow]] = []
        for row in self.rows:
            match = _MASKED.match(row.tag)
            if match:
                element = None if match.group(2) == "xxxx" else int(match.group(2), 16)
                out.append((int(match.group(1), 16), element, row))
        return out

    @property
    def private_row(self) -> ProfileRow:
        """The row for private attributes."""
        return next(r for r in self.rows if r.tag == PRIVATE_ROW)

    def row_for(self, tag: BaseTag | int) -> ProfileRow | None:
        """The row that covers ``tag``, the repeating groups (50xx, 60xx) included; None if none does.

        Private tags are covered by :attr:`private_row`, which callers handle themselves
        (the Retain Safe Private option needs the private creator).
        """
        tag = int(tag)
        row = self._by_tag.get(tag)
        if row is not None:
            return row
        group, element = tag >> 16, tag & 0xFFFF
        for high, masked_element, masked_row in self._masked:
            if group >> 8 == high and group % 2 == 0 and masked_element in (None, element):
                return masked_row
        return None


def _parse(text: str) -> ProfileTable:
    comments = [line for line in text.splitlines() if line.startswith("#")]
    edition_line = next(line for line in comments if line.startswith("# Edition:"))
    edition = edition_line.split(":", 1)[1].split()[0]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    reader = csv.DictReader(io.StringIO(body))
    assert reader.fieldnames is not None
    option_columns = [c for c in reader.fieldnames if c.endswith("Opt.")]
    rows = []
    for record in reader:
        codes = {c: record[c] for c in option_columns if record[c]}
        for code in (record["Basic Prof."], *codes.values()):
            if code not in ACTION_CODES:
                raise ValueError(f"Table E.1-1 row {record['Tag']} has an unknown action code")
        rows.append(
            ProfileRow(
                tag=record["Tag"],
                name=record["Attribute Name"],
                basic=record["Basic Prof."],
                options=codes,
                options_from=record["Options From"],
            )
        )
    return ProfileTable(rows=tuple(rows), edition=edition)


@functools.cache
def load_table() -> ProfileTable:
    """Table E.1-1 as vendored in ``radai/deid/data/table_e1_1.csv``."""
    text = (files("radai.deid") / "data" / "table_e1_1.csv").read_text(encoding="utf-8")
    return _parse(text)


@dataclass(frozen=True)
class SafePrivate:
    """One safe private attribute (PS3.15 Table E.3.10-1): its group, block element and creator."""

    group: int
    element: int
    creator: str
    vr: str
    meaning: str


@functools.cache
def load_safe_private() -> dict[tuple[int, str, int], SafePrivate]:
    """The vendored safe private attributes, keyed by (group, private creator, element within block)."""
    text = (files("radai.deid") / "data" / "safe_private.csv").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    out: dict[tuple[int, str, int], SafePrivate] = {}
    for record in csv.DictReader(io.StringIO(body)):
        item = SafePrivate(
            group=int(record["Group"], 16),
            element=int(record["Element"][2:], 16),
            creator=record["Private Creator"],
            vr=record["VR"],
            meaning=record["Meaning"],
        )
        out[(item.group, item.creator, item.element)] = item
    return out
