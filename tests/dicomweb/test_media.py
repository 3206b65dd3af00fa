"""Content negotiation (PS3.18 §8.7): what radai sends for what a client accepts."""

from __future__ import annotations

import pytest

from radai.dicomweb.errors import BadRequest, NotAcceptable
from radai.dicomweb.media import (
    NATIVE,
    negotiate_frames,
    negotiate_instances,
    negotiate_rendered,
    parse_accept,
)

JPEG_LS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"


def test_accept_header_is_split_unquoted_and_ordered_by_weight() -> None:
    ranges = parse_accept(['image/png;q=0.5, multipart/related; type="image/jpeg"; transfer-syntax="*"',
                           "text/html;q=0"])
    assert [r.media_type for r in ranges] == ["multipart/related", "image/png"]  # q=0: not acceptable
    assert ranges[0].part_type == "image/jpeg"
    assert ranges[0].transfer_syntax == "*"
    assert parse_accept([]) == parse_accept([""]) != []  # no header: anything
    with pytest.raises(BadRequest):
        parse_accept(["image/png;q=high"])


@pytest.mark.parametrize(("accept", "stored", "media_type", "syntax", "as_stored"), [
    # OHIF, with and without quotation marks.
    ('multipart/related; type="application/octet-stream"; transfer-syntax="*"', JPEG_LS,
     "application/octet-stream", JPEG_LS, True),
    ("multipart/related; type=application/octet-stream; transfer-syntax=*", NATIVE,
     "application/octet-stream", NATIVE, False),
    ('multipart/related; type="application/octet-stream"', JPEG_LS,
     "application/octet-stream", NATIVE, False),
    ("*/*", J2K, "application/octet-stream", NATIVE, False),
    ('multipart/related; type="image/jp2"', J2K, "image/jp2", J2K, True),
    ('multipart/related; type="image/*"', JPEG_LS, "image/jls", JPEG_LS, True),
    ('multipart/related; type="image/jls", multipart/related; type="application/octet-stream"', J2K,
     "application/octet-stream", NATIVE, False),
])
def test_frames(accept: str, stored: str, media_type: str, syntax: str, as_stored: bool) -> None:
    rendition = negotiate_frames(parse_accept([accept]), stored)
    assert (rendition.media_type, rendition.transfer_syntax, rendition.as_stored_compressed) == (
        media_type, syntax, as_stored)


def test_frames_in_a_syntax_that_is_not_held() -> None:
    with pytest.raises(NotAcceptable):
        negotiate_frames(parse_accept(['multipart/related; type="image/jp2"']), JPEG_LS)
    with pytest.raises(NotAcceptable):
        negotiate_frames(parse_accept(["application/octet-stream"]), JPEG_LS)  # single part: bulk data only


def test_instances() -> None:
    assert negotiate_instances(parse_accept([]), single_allowed=False).transfer_syntax is None
    named = negotiate_instances(parse_accept([f'multipart/related; type="application/dicom"; '
                                              f"transfer-syntax={NATIVE}"]), single_allowed=False)
    assert named.transfer_syntax == NATIVE and named.multipart
    assert not negotiate_instances(parse_accept(["application/dicom"]), single_allowed=True).multipart
    with pytest.raises(NotAcceptable):
        negotiate_instances(parse_accept(["application/dicom"]), single_allowed=False)


@pytest.mark.parametrize(("accept", "media_type"), [
    ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "image/jpeg"),  # a browser
    ("image/png", "image/png"),
    ('multipart/related; type="image/png"', "image/png"),
    ("text/html, */*;q=0.1", "image/jpeg"),
])
def test_rendered(accept: str, media_type: str) -> None:
    assert negotiate_rendered(parse_accept([accept])).media_type == media_type
