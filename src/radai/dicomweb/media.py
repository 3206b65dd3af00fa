"""Media types and content negotiation of DICOMweb (PS3.18 §8.7).

A client names what it accepts in the ``Accept`` header (or an ``accept`` query
parameter): a media type, for multipart payloads ``multipart/related`` with a ``type``
parameter naming the type of each part, and a ``transfer-syntax`` parameter naming the
Transfer Syntax of DICOM or bulk data parts (``*`` for any). The functions here pick,
from what the client accepts and what radai holds, the representation to send, or
raise :class:`~radai.dicomweb.errors.NotAcceptable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydicom import uid

from radai.dicomweb.errors import BadRequest, NotAcceptable

MULTIPART_RELATED = "multipart/related"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
JPEG = "image/jpeg"
PNG = "image/png"

#: The Transfer Syntax of uncompressed ("native") bulk data (PS3.18 §8.7.3.5.2).
NATIVE = str(uid.ExplicitVRLittleEndian)

#: Media types of compressed pixel data and the Transfer Syntaxes each may carry, the
#: default first (PS3.18 Table 8.7.3-5 and §8.7.3.5.2). ``x-`` forms are older spellings
#: some clients still send.
IMAGE_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (str(uid.JPEGBaseline8Bit), str(uid.JPEGExtended12Bit),
                   str(uid.JPEGLossless), str(uid.JPEGLosslessSV1)),
    "image/dicom-rle": (str(uid.RLELossless),),
    "image/x-dicom-rle": (str(uid.RLELossless),),
    "image/jls": (str(uid.JPEGLSLossless), str(uid.JPEGLSNearLossless)),
    "image/x-jls": (str(uid.JPEGLSLossless), str(uid.JPEGLSNearLossless)),
    "image/jp2": (str(uid.JPEG2000Lossless), str(uid.JPEG2000)),
    "image/jpx": (str(uid.JPEG2000MCLossless), str(uid.JPEG2000MC)),
}

#: Transfer Syntaxes of encapsulated (compressed) pixel data.
ENCAPSULATED = frozenset(ts for tss in IMAGE_MEDIA_TYPES.values() for ts in tss)


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: a media type (or range), its parameters and weight."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def is_multipart(self) -> bool:
        """Whether this asks for a ``multipart/related`` payload."""
        return self.media_type == MULTIPART_RELATED

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter of a multipart range (lower case), if any."""
        value = self.params.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        """The ``transfer-syntax`` parameter, if any (``*`` means any)."""
        return self.params.get("transfer-syntax")

    def matches(self, media_type: str) -> bool:
        """Whether a concrete media type falls in this range (``*/*``, ``image/*``)."""
        if self.media_type in ("*/*", "*"):
            return True
        if self.media_type.endswith("/*"):
            return media_type.startswith(self.media_type[:-1])
        return self.media_type == media_type


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside double quotes."""
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


def parse_media_type(text: str) -> tuple[str, dict[str, str]]:
    """A media type and its parameters (RFC 9110 §8.3.1); names lower-cased, quotes removed."""
    pieces = _split(text, ";")
    media_type = pieces[0].strip().lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        name, sep, value = piece.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[name.strip().lower()] = value
    return media_type, params


def parse_accept(values: Iterable[str]) -> list[MediaRange]:
    """The media ranges of Accept header values, most preferred first (RFC 9110 §12.5.1).

    No Accept header at all means ``*/*``.
    """
    ranges: list[MediaRange] = []
    for value in values:
        for item in _split(value, ","):
            if not item.strip():
                continue
            media_type, params = parse_media_type(item)
            q = 1.0
            if "q" in params:
                try:
                    q = float(params.pop("q"))
                except ValueError:
                    raise BadRequest("the Accept header has an invalid q value") from None
            if "/" not in media_type and media_type != "*":
                raise BadRequest("the Accept header names a media type without a subtype")
            if q > 0:
                ranges.append(MediaRange(media_type, params, q))
    if not ranges:
        return [MediaRange("*/*")]
    return sorted(ranges, key=lambda r: -r.q)  # sorted() is stable: ties keep their order


def describe(ranges: Sequence[MediaRange]) -> str:
    """The accepted media types, for an error message."""
    return ", ".join(sorted({r.media_type + (f' type="{r.part_type}"' if r.part_type else "")
                             for r in ranges}))


# --- instances (application/dicom) -------------------------------------------------


@dataclass(frozen=True)
class InstanceRendition:
    """How instances are sent: as one multipart payload or a single part, and in which syntax."""

    multipart: bool
    #: The Transfer Syntax the client demands; None: each instance as stored.
    transfer_syntax: str | None


def negotiate_instances(ranges: Sequence[MediaRange], *, single_allowed: bool) -> InstanceRendition:
    """Pick the rendition of a Retrieve Instances request (PS3.18 §10.4.1.1.1, §8.7.3.5).

    Without a ``transfer-syntax`` parameter (or with ``*``) instances are sent byte for
    byte as stored; radai does not re-encode what the client did not ask to change. A
    named syntax is checked per instance by the caller.
    """
    for r in ranges:
        if r.is_multipart and (r.part_type is None or MediaRange(r.part_type).matches(DICOM)):
            ts = r.transfer_syntax
            return InstanceRendition(True, None if ts in (None, "*") else ts)
        if r.media_type == DICOM and single_allowed:
            ts = r.transfer_syntax
            return InstanceRendition(False, None if ts in (None, "*") else ts)
        if r.media_type in ("*/*", "multipart/*"):
            return InstanceRendition(True, None)
    raise NotAcceptable(f"instances are sent as multipart/related; type=\"{DICOM}\"; "
                        f"the request accepts only {describe(ranges)}")


# --- frames and bulk data (application/octet-stream, image/*) ---------------------


@dataclass(frozen=True)
class FrameRendition:
    """How pixel data is sent: decoded to native, or as the stored compressed fragments."""

    #: Media type of each part.
    media_type: str
    #: Transfer Syntax of the parts.
    transfer_syntax: str
    #: True: the stored compressed frames; False: native (uncompressed) frames.
    as_stored_compressed: bool
    multipart: bool = True

    @property
    def part_content_type(self) -> str:
        """The Content-Type header of each part."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def negotiate_frames(ranges: Sequence[MediaRange], stored_ts: str, *,
                     single_allowed: bool = False) -> FrameRendition:
    """Pick the rendition of pixel data frames (PS3.18 §8.7.3.5, §10.4.1.1.4).

    Native frames are the default. Compressed frames go out as stored when the client
    accepts their syntax: ``application/octet-stream`` with ``transfer-syntax=*`` or
    the stored UID, or the syntax's own media type (``image/jls``, ``image/jp2``…).
    radai never re-compresses.
    """
    compressed = stored_ts in ENCAPSULATED
    native = FrameRendition(OCTET_STREAM, NATIVE, False)
    for r in ranges:
        if r.media_type in ("*/*", "multipart/*"):
            return native
        if r.is_multipart:
            part_type, multipart = r.part_type or OCTET_STREAM, True
        elif single_allowed:
            part_type, multipart = r.media_type, False
        else:
            continue
        choice = _frame_choice(part_type, r.transfer_syntax, stored_ts, compressed)
        if choice is not None:
            return FrameRendition(choice.media_type, choice.transfer_syntax,
                                  choice.as_stored_compressed, multipart)
    raise NotAcceptable("the pixel data can be sent as application/octet-stream (native) or "
                        f"in its stored syntax {stored_ts}; the request accepts only {describe(ranges)}")


def _frame_choice(part_type: str, ts: str | None, stored_ts: str,
                  compressed: bool) -> FrameRendition | None:
    if part_type in ("*/*", "*", "application/*"):
        # A range: what it covers is given in the default form, native.
        return FrameRendition(OCTET_STREAM, NATIVE, False)
    if part_type == "image/*":
        own = next((t for t, tss in IMAGE_MEDIA_TYPES.items() if stored_ts in tss and "/x-" not in t), None)
        return FrameRendition(own, stored_ts, True) if own is not None and compressed else None
    if part_type == OCTET_STREAM:
        if ts in (None, NATIVE):
            return FrameRendition(OCTET_STREAM, NATIVE, False)
        if ts == "*" or ts == stored_ts:
            return FrameRendition(OCTET_STREAM, stored_ts if compressed else NATIVE, compressed)
        return None
    syntaxes = IMAGE_MEDIA_TYPES.get(part_type)
    if syntaxes is None or not compressed:
        return None
    wanted = syntaxes[:1] if ts is None else syntaxes if ts == "*" else (ts,)
    if stored_ts in wanted and stored_ts in syntaxes:
        return FrameRendition(part_type, stored_ts, True)
    return None


# --- rendered images ---------------------------------------------------------------


@dataclass(frozen=True)
class RenderedRendition:
    """The image format of a rendered resource."""

    media_type: str


def negotiate_rendered(ranges: Sequence[MediaRange]) -> RenderedRendition:
    """Pick JPEG or PNG for a rendered resource (PS3.18 §8.7.4, §10.4.1.1.3)."""
    for r in ranges:
        candidate = r.part_type if r.is_multipart else r.media_type
        if candidate is None:
            return RenderedRendition(JPEG)
        for media_type in (JPEG, PNG):
            if MediaRange(candidate).matches(media_type):
                return RenderedRendition(media_type)
    raise NotAcceptable(f"rendered images are {JPEG} or {PNG}; the request accepts only {describe(ranges)}")


def accepts_json(ranges: Sequence[MediaRange]) -> bool:
    """Whether a search or metadata response in DICOM JSON is acceptable (PS3.18 §8.7.5)."""
    return any(r.matches(DICOM_JSON) or r.matches("application/json") for r in ranges)
