"""The vendored PS3.15 Table E.1-1: complete, and the rows everyone knows say what the standard says."""

from __future__ import annotations

from collections import Counter

from radai.deid import Option
from radai.deid.table import ACTION_CODES, load_safe_private, load_table


def row(tag: str):  # type: ignore[no-untyped-def]
    return next(r for r in load_table().rows if r.tag == tag)


def test_the_whole_table_is_there() -> None:
    table = load_table()
    assert table.edition == "2026c"
    # 655 attribute rows of the 2026c edition (three of them repeating groups) plus the
    # Private Attributes row.
    assert len(table.rows) == 656
    assert len({r.tag for r in table.rows}) == 656
    codes = Counter(r.basic for r in table.rows)
    assert set(codes) <= ACTION_CODES
    # Every combined code of Table E.1-1a is used somewhere.
    assert {"Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"} <= set(codes)
    # Option cells are K or C only (PS3.15 E.3).
    assert {c for r in table.rows for c in r.options.values()} == {"K", "C"}
    # Every option column has cells.
    for option in Option:
        if option.column:
            assert any(option.column in r.options for r in table.rows), option


def test_known_rows() -> None:
    assert row("(0010,0010)").basic == "Z"  # Patient's Name
    assert row("(0010,0020)").basic == "Z/D"  # Patient ID
    assert row("(0020,000D)").basic == "U"  # Study Instance UID
    assert row("(0020,000D)").options == {"Rtn. UIDs Opt.": "K"}
    acquisition_datetime = row("(0008,002A)")
    assert acquisition_datetime.basic == "X/Z/D"
    assert acquisition_datetime.options == {
        "Rtn. Long. Full Dates Opt.": "K",
        "Rtn. Long. Modif. Dates Opt.": "C",
    }
    private = row("(gggg,eeee) where gggg is odd")
    assert private.basic == "X" and private.options == {"Rtn. Safe Priv. Opt.": "C"}
    assert row("(0008,1140)").basic == "X/Z/U*"  # Referenced Image Sequence
    assert row("(0010,1010)").options == {"Rtn. Pat. Chars. Opt.": "K"}  # Patient's Age
    assert row("(0008,1030)").options == {"Clean Desc. Opt.": "C"}  # Study Description
    assert row("(0040,A730)").basic == "D"  # Content Sequence


def test_repeating_groups_are_matched() -> None:
    table = load_table()
    assert table.row_for(0x60224000) == row("(60xx,4000)")
    assert table.row_for(0x60003000) == row("(60xx,3000)")
    assert table.row_for(0x501E0030) == row("(50xx,xxxx)")
    assert table.row_for(0x60000010) is None  # Overlay Rows: not in the table, kept
    assert table.row_for(0x00080060) is None  # Modality


def test_action_with_options() -> None:
    date = row("(0008,0020)")  # Study Date: Z, K with full dates, C with modified dates
    assert date.action([]) == "Z"
    assert date.action([Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]) == "C"
    assert date.action([Option.RETAIN_LONGITUDINAL_FULL_DATES]) == "K"


def test_safe_private_list() -> None:
    safe = load_safe_private()
    assert len(safe) == 87
    b_value = safe[(0x0019, "SIEMENS MR HEADER", 0x0C)]
    assert b_value.vr == "IS" and b_value.meaning == "B Value"
    assert {creator for (_, creator, _) in safe} >= {
        "GEMS_ACQU_01",
        "Philips Imaging DD 001",
        "SIEMENS MR HEADER",
    }
