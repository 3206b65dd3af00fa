"""``multipart/related`` payloads (RFC 2387, PS3.18 §8.6.1.2): reading STOW-RS requests
and writing WADO-RS responses.

Requests are read as they stream in, with python-multipart's streaming parser; each
part goes to a spooled temporary file, so a large study is never held in memory more
than one small part at a time. Responses are generated part by part.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from radai.dicomweb.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from radai.dicomweb.media import DICOM, MULTIPART_RELATED, parse_media_type

CRLF = b"\r\n"


# --- writing -----------------------------------------------------------------------


class MultipartWriter:
    """Frames the parts of one ``multipart/related`` response."""

    def __init__(self, part_type: str) -> None:
        self.part_type = part_type
        # A random 32-hex-digit boundary cannot plausibly occur inside a part.
        self.boundary = uuid.uuid4().hex

    @property
    def content_type(self) -> str:
        """The Content-Type header of the whole payload."""
        return f'{MULTIPART_RELATED}; type="{self.part_type}"; boundary={self.boundary}'

    def part_head(self, content_type: str, *, location: str | None = None,
                  length: int | None = None) -> bytes:
        """Boundary and headers that open a part (its content follows)."""
        lines = [f"--{self.boundary}", f"Content-Type: {content_type}"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if location is not None:
            lines.append(f"Content-Location: {location}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def end(self) -> bytes:
        """The closing delimiter (after the last part's content)."""
        return f"--{self.boundary}--\r\n".encode("ascii")

    def part(self, content_type: str, data: bytes, *, location: str | None = None) -> bytes:
        """One complete part, content included."""
        return self.part_head(content_type, location=location, length=len(data)) + data + CRLF

    def whole(self, content_type: str, parts: Iterator[bytes]) -> Iterator[bytes]:
        """Every part of ``parts`` (each already a content), then the end."""
        for data in parts:
            yield self.part(content_type, data)
        yield self.end()


# --- reading -----------------------------------------------------------------------


@dataclass
class ReceivedPart:
    """One part of a request: its media type and its content, spooled."""

    content_type: str | None
    file: IO[bytes]
    size: int = 0

    def read(self) -> bytes:
        """The whole content of the part."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        """Release the spool (memory or temporary file)."""
        self.file.close()


@dataclass
class _PartHeaders:
    name: bytearray = dataclass_field(default_factory=bytearray)
    value: bytearray = dataclass_field(default_factory=bytearray)
    headers: dict[str, str] = dataclass_field(default_factory=dict)


def stow_boundary(content_type: str | None) -> bytes:
    """The boundary of a STOW-RS request body, after checking its media type.

    PS3.18 §10.5.1.2: the body is ``multipart/related; type="application/dicom"``
    (radai does not take the metadata-and-bulk-data form, ``application/dicom+json``
    or ``+xml`` parts). A missing ``type`` parameter is taken to mean DICOM parts.
    """
    if not content_type:
        raise UnsupportedMediaType(f'the request has no Content-Type; STOW-RS takes {MULTIPART_RELATED}; '
                                   f'type="{DICOM}"')
    media_type, params = parse_media_type(content_type)
    if media_type != MULTIPART_RELATED:
        raise UnsupportedMediaType(f'the request body is {media_type or "untyped"}; STOW-RS takes '
                                   f'{MULTIPART_RELATED}; type="{DICOM}"')
    part_type = params.get("type", DICOM).lower()
    if part_type != DICOM:
        raise UnsupportedMediaType(f'the parts are declared as {part_type}; radai stores only {DICOM} '
                                   "parts (PS3.10 files)")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadRequest("the multipart/related Content-Type has no valid boundary parameter")
    return boundary.encode("latin-1")


class MultipartReader:
    """Reads a ``multipart/related`` body fed chunk by chunk; see the module docstring."""

    def __init__(self, boundary: bytes, *, memory_part_bytes: int, spool_dir: Path,
                 max_bytes: int, part_type: str = DICOM) -> None:
        self._memory_part_bytes = memory_part_bytes
        self._spool_dir = spool_dir
        self._max_bytes = max_bytes
        self._part_type = part_type
        self._received = 0
        self._ended = False
        self._headers = _PartHeaders()
        self._current: ReceivedPart | None = None
        self.parts: list[ReceivedPart] = []
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        })

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body."""
        self._received += len(chunk)
        if self._received > self._max_bytes:
            raise PayloadTooLarge(f"the request body is larger than {self._max_bytes} bytes")
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise BadRequest("the multipart/related body is malformed") from None

    def finish(self) -> list[ReceivedPart]:
        """The parts, once the whole body was read; raises if it ended early or was empty."""
        if not self._ended:
            raise BadRequest("the multipart/related body ends before its closing boundary")
        if not self.parts:
            raise BadRequest("the multipart/related body holds no parts")
        return self.parts

    def close(self) -> None:
        """Release every spooled part."""
        for part in self.parts:
            part.close()
        if self._current is not None and self._current not in self.parts:
            self._current.close()

    # python-multipart callbacks

    def _on_part_begin(self) -> None:
        self._headers = _PartHeaders()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._headers.name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers.value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._headers.name.decode("latin-1").strip().lower()
        self._headers.headers[name] = self._headers.value.decode("latin-1").strip()
        self._headers.name, self._headers.value = bytearray(), bytearray()

    def _on_headers_finished(self) -> None:
        content_type = self._headers.headers.get("content-type")
        if content_type is not None:
            media_type, _ = parse_media_type(content_type)
            if media_type != self._part_type:
                # Checked as soon as the part's headers are read: nothing has been stored.
                raise UnsupportedMediaType(f"a part is {media_type or 'untyped'}; radai stores only "
                                           f"{self._part_type} parts (PS3.10 files)")
        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=self._memory_part_bytes, mode="w+b", dir=str(self._spool_dir), prefix=".stow-")
        self._current = ReceivedPart(content_type, spool)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self._current is not None
        self._current.file.write(data[start:end])
        self._current.size += end - start

    def _on_part_end(self) -> None:
        assert self._current is not None
        self.parts.append(self._current)
        self._current = None

    def _on_end(self) -> None:
        self._ended = True


@contextlib.contextmanager
def reading(reader: MultipartReader) -> Iterator[MultipartReader]:
    """Close ``reader``'s spools however the block ends."""
    try:
        yield reader
    finally:
        reader.close()
