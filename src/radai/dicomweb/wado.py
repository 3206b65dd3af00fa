"""WADO-RS: the Retrieve transaction (PS3.18 §10.4) for instances, metadata, bulk data
and frames.

- Instances go out byte for byte as stored, unless the client demands a Transfer
  Syntax other than the stored one: Explicit VR Little Endian is then made with
  pydicom (decompressing, or re-encoding implicit, deflated and big endian files);
  any other syntax radai does not hold is refused (406).
- Metadata is DICOM JSON (Annex F) with a BulkDataURI for Pixel Data and every other
  binary value over the bulk data threshold.
- Frames are native (decoded, Explicit VR Little Endian layout) by default, or the
  stored compressed frames when the client accepts their syntax.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.filewriter import dcmwrite
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series, Study
from radai.archive.parse import is_valid_uid
from radai.archive.storage import FileStorage
from radai.dicomweb.dicomjson import (
    BINARY_VRS,
    PIXEL_DATA,
    BulkUri,
    dataset_json,
    find_element,
    to_little_endian,
)
from radai.dicomweb.errors import BadRequest, NotAcceptable, NotFound
from radai.dicomweb.media import (
    DICOM,
    NATIVE,
    OCTET_STREAM,
    FrameRendition,
    InstanceRendition,
    MediaRange,
    negotiate_frames,
)
from radai.dicomweb.multipart import CRLF, MultipartWriter
from radai.imaging import number_of_frames
from radai.logs import uid_ref

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: Values larger than this are not read while reading metadata (read when accessed).
_DEFER_SIZE = 64 * 1024


@dataclass(frozen=True)
class StoredInstance:
    """An instance of the archive, located for retrieval."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    size: int
    frames: int | None
    rows: int | None

    def url(self, service_url: str) -> str:
        """Its WADO-RS URL (PS3.18 §10.4.1)."""
        return (f"{service_url}/studies/{self.study_instance_uid}/series/{self.series_instance_uid}"
                f"/instances/{self.sop_instance_uid}")


def check_uid(value: str, what: str) -> str:
    """A UID from a request path, or :class:`BadRequest` naming which one is malformed."""
    if not is_valid_uid(value):
        raise BadRequest(f"the {what} in the path is not a valid UID")
    return value


def find_instances(session: Session, storage: FileStorage, *, study: str, series: str | None = None,
                   instance: str | None = None) -> list[StoredInstance]:
    """The stored instances of a study, series or single instance, in series/instance order.

    Raises :class:`NotFound` when there is none (an unknown UID, or one under another parent).
    """
    stmt = (select(Instance, Series.series_instance_uid, Study.study_instance_uid)
            .join(Series, Instance.series_pk == Series.id).join(Study, Series.study_pk == Study.id)
            .where(Study.study_instance_uid == study))
    if series is not None:
        stmt = stmt.where(Series.series_instance_uid == series)
    if instance is not None:
        stmt = stmt.where(Instance.sop_instance_uid == instance)
    stmt = stmt.order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
    found = [StoredInstance(study_uid, series_uid, inst.sop_instance_uid, inst.sop_class_uid,
                            inst.transfer_syntax_uid, storage.path(inst.path), inst.size_bytes,
                            inst.number_of_frames, inst.rows)
             for inst, series_uid, study_uid in session.execute(stmt)]
    if not found:
        what = "instance" if instance else "series" if series else "study"
        raise NotFound(f"no such {what} in the archive")
    return found


# --- instances ---------------------------------------------------------------------


def plan_instances(instances: Sequence[StoredInstance], rendition: InstanceRendition) -> list[bool]:
    """For each instance, whether it must be transcoded; :class:`NotAcceptable` if one cannot be."""
    wanted = rendition.transfer_syntax
    plan = []
    for inst in instances:
        if wanted is None or wanted == inst.transfer_syntax_uid:
            plan.append(False)
        elif wanted == NATIVE:
            plan.append(True)
        else:
            raise NotAcceptable(f"transfer syntax {_safe_ts(wanted)} is not held; radai sends instances "
                                f"as stored or as Explicit VR Little Endian ({NATIVE})")
    return plan


def _safe_ts(text: str) -> str:
    # Only a well-formed UID is echoed back.
    return text if is_valid_uid(text) else "named in the request"


def instance_part_type(inst: StoredInstance, transcode: bool) -> str:
    """The Content-Type of an instance's part."""
    return f"{DICOM}; transfer-syntax={NATIVE if transcode else inst.transfer_syntax_uid}"


def stream_instances(instances: Sequence[StoredInstance], plan: Sequence[bool],
                     writer: MultipartWriter, service_url: str) -> Iterator[bytes]:
    """The multipart/related payload of a Retrieve Instances response, chunk by chunk."""
    for inst, transcode in zip(instances, plan, strict=True):
        if transcode:
            data = transcode_to_explicit_little_endian(inst)
            yield writer.part(instance_part_type(inst, True), data, location=inst.url(service_url))
            continue
        yield writer.part_head(instance_part_type(inst, False), location=inst.url(service_url),
                               length=inst.size)
        yield from read_file(inst.path)
        yield CRLF
    yield writer.end()


def read_file(path: Path) -> Iterator[bytes]:
    """A stored file in chunks (the bytes exactly as stored)."""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def transcode_to_explicit_little_endian(inst: StoredInstance) -> bytes:
    """The instance re-encoded in Explicit VR Little Endian (PS3.5 §A.2).

    Compressed pixel data is decoded (colour becomes RGB, PS3.5 §8.2); big endian
    binary values are byte-swapped word by word before writing. The SOP Instance UID
    is kept: the client asked for another encoding of the same instance.
    """
    ds = dcmread(inst.path)
    ts = UID(inst.transfer_syntax_uid)
    if ts.is_encapsulated:
        try:
            ds.decompress(generate_instance_uid=False)
        except Exception:  # noqa: BLE001 - decoders raise many types
            log.warning("could not decode instance %s", uid_ref(inst.sop_instance_uid))
            raise NotAcceptable("the stored pixel data cannot be decoded; ask for the instance in "
                                f"its stored transfer syntax {inst.transfer_syntax_uid}") from None
    elif ts == ExplicitVRBigEndian:
        ds.walk(_swap_binary_value)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def _swap_binary_value(ds: Dataset, elem: Any) -> None:
    if elem.VR in BINARY_VRS and isinstance(elem.value, bytes | bytearray):
        elem.value = to_little_endian(bytes(elem.value), str(elem.VR), little_endian=False)


# --- metadata ----------------------------------------------------------------------


def read_header(inst: StoredInstance) -> Dataset:
    """The instance's dataset with large values left on disk until asked for."""
    deferred = inst.transfer_syntax_uid != str(DeflatedExplicitVRLittleEndian)
    # A deflated file is inflated in memory: its deferred values could not be re-read.
    return dcmread(inst.path, defer_size=_DEFER_SIZE if deferred else None)


def metadata(instances: Sequence[StoredInstance], *, service_url: str,
             threshold: int) -> list[dict[str, Any]]:
    """DICOM JSON of each instance (PS3.18 §10.4.1.1.2, Annex F), bulk data by reference.

    Each object also carries Available Transfer Syntax UID (0008,3002): the syntax the
    instance is stored in, which is the syntax its frames are sent in on request.
    """
    out = []
    for inst in instances:
        ds = read_header(inst)
        item = dataset_json(ds, bulk_uri=_bulk_uri(inst.url(service_url)), threshold=threshold,
                            little_endian=inst.transfer_syntax_uid != str(ExplicitVRBigEndian))
        item["00083002"] = {"vr": "UI", "Value": [inst.transfer_syntax_uid]}
        out.append(dict(sorted(item.items())))
    return out


def _bulk_uri(instance_url: str) -> BulkUri:
    def uri(path: str) -> str:
        return f"{instance_url}/bulkdata/{path}"

    return uri


# --- frames and bulk data ----------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """Frame numbers from a frame list (``1,3,5``, 1-based, PS3.18 §10.4.1.1.4)."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1 or len(item) > 9:
            raise BadRequest("the frame list must be frame numbers from 1, separated by commas")
        numbers.append(int(item))
    return numbers


class FrameSource:
    """The frames of one stored image, native or as stored, read from its file.

    Only the header and the frames asked for are read: the Pixel Data value is found
    right after the header and frames are read at their offsets (native data) or
    through the offset tables of the encapsulated data (PS3.5 §A.4). A deflated file
    cannot be read at an offset and is read whole.
    """

    def __init__(self, inst: StoredInstance) -> None:
        self.inst = inst
        self._ts = UID(inst.transfer_syntax_uid)
        self._file = inst.path.open("rb")
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        self._value: bytes | None = None
        if self._ts == DeflatedExplicitVRLittleEndian:
            self.header = dcmread(self._file)
            if PIXEL_DATA not in self.header:
                raise NotFound("the instance has no Pixel Data (7FE0,0010)")
            self._value = bytes(self.header.PixelData)
            self._offset, self._length, self._vr = 0, len(self._value), "OB"
        else:
            self.header = dcmread(self._file, stop_before_pixels=True)
            self._offset, self._length, self._vr = self._pixel_value_position()
        self.count = number_of_frames(self.header)
        self._bits = int(self.header.get("BitsAllocated", 8) or 8)

    def _pixel_value_position(self) -> tuple[int, int, str]:
        """Offset, length and VR of the Pixel Data value, which follows the header."""
        little = self._ts != ExplicitVRBigEndian
        order = "<" if little else ">"
        head = self._file.read(8)
        if len(head) < 8 or struct.unpack(order + "HH", head[:4]) != (0x7FE0, 0x0010):
            raise NotFound("the instance has no Pixel Data (7FE0,0010)")
        if self._ts == ImplicitVRLittleEndian:
            vr = "OW" if self._bits_allocated() > 8 else "OB"
            length = struct.unpack("<I", head[4:8])[0]
        else:
            vr = head[4:6].decode("ascii", "replace")
            length = struct.unpack(order + "I", self._file.read(4))[0]
        return self._file.tell(), length, vr

    def _bits_allocated(self) -> int:
        return int(self.header.get("BitsAllocated", 8) or 8)

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _read(self, start: int, length: int) -> bytes:
        if self._value is not None:
            return self._value[start:start + length]
        self._file.seek(self._offset + start)
        return self._file.read(length)

    def native(self, index: int) -> bytes:
        """One frame (0-based) in native form: Explicit VR Little Endian pixel encoding.

        Uncompressed frames are the stored bytes of the frame (byte-swapped when stored
        big endian); compressed frames are decoded by pydicom's pixel handlers;
        single-bit frames are packed eight pixels to a byte (PS3.5 §8.1.1).
        """
        ds = self.header
        if not self._ts.is_encapsulated and self._bits % 8 == 0:
            length = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
                      * self._bits // 8)
            word = 2 if self._vr == "OW" else 1
            if self._ts == ExplicitVRBigEndian and ((index * length) % word or length % word):
                # A frame that starts or ends inside a word: swap the whole value, then cut.
                value = to_little_endian(self._read(0, self._length), self._vr, little_endian=False)
                frame = value[index * length:(index + 1) * length]
            else:
                frame = to_little_endian(self._read(index * length, length), self._vr,
                                         little_endian=self._ts != ExplicitVRBigEndian)
            if len(frame) != length:
                raise NotAcceptable("the stored Pixel Data (7FE0,0010) is shorter than its frames")
            return frame
        try:
            arr = pixel_array(self.inst.path, index=index)
        except Exception:  # noqa: BLE001 - decoders raise many types
            log.warning("could not decode a frame of instance %s", uid_ref(self.inst.sop_instance_uid))
            raise NotAcceptable("the stored pixel data cannot be decoded; ask for it in its stored "
                                f"transfer syntax {self.inst.transfer_syntax_uid} (transfer-syntax=*)"
                                ) from None
        if self._bits == 1:
            return pack_bits(arr)
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()

    def stored(self, index: int) -> bytes:
        """One frame (0-based) of encapsulated pixel data exactly as stored (PS3.5 §A.4)."""
        ds = self.header
        extended = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        self._file.seek(self._offset)
        try:
            return get_frame(self._file, index, number_of_frames=self.count, extended_offsets=extended)
        except (ValueError, KeyError):
            raise NotAcceptable("the stored encapsulated Pixel Data (7FE0,0010) is malformed") from None

    def get(self, index: int, rendition: FrameRendition) -> bytes:
        """One frame (0-based) in ``rendition``."""
        return self.stored(index) if rendition.as_stored_compressed else self.native(index)

    def whole_native(self) -> bytes:
        """The whole Pixel Data value in native form (uncompressed data: as stored, little endian)."""
        if not self._ts.is_encapsulated and self._bits % 8 == 0:
            return to_little_endian(self._read(0, self._length), self._vr,
                                    little_endian=self._ts != ExplicitVRBigEndian)
        return b"".join(self.native(i) for i in range(self.count))


def frames(inst: StoredInstance, numbers: Sequence[int], ranges: Sequence[MediaRange]
           ) -> tuple[FrameRendition, list[bytes]]:
    """The requested frames in the negotiated rendition (PS3.18 §10.4.1.1.4)."""
    rendition = negotiate_frames(ranges, inst.transfer_syntax_uid)
    with FrameSource(inst) as source:
        for n in numbers:
            if n > source.count:
                raise NotFound(f"frame {n} does not exist; the instance has {source.count}")
        return rendition, [source.get(n - 1, rendition) for n in numbers]


def bulkdata(inst: StoredInstance, path: str, ranges: Sequence[MediaRange]
             ) -> tuple[FrameRendition, list[bytes]]:
    """The value a BulkDataURI names (PS3.18 §10.4.1.1.5), as one or more parts.

    Pixel Data gives every frame: one part per frame when it is compressed, otherwise
    one part with the whole native value. Any other value is one little endian part.
    """
    if path.upper() == f"{PIXEL_DATA:08X}":
        rendition = negotiate_frames(ranges, inst.transfer_syntax_uid, single_allowed=True)
        with FrameSource(inst) as source:
            if rendition.as_stored_compressed:
                return rendition, [source.stored(i) for i in range(source.count)]
            return rendition, [source.whole_native()]
    # Bulk data other than the pixels nearly always comes before them.
    elem = find_element(dcmread(inst.path, stop_before_pixels=True), path)
    if elem is None:
        elem = find_element(dcmread(inst.path), path)
    if elem is None or elem.is_empty:
        raise NotFound("no bulk data at that location in the instance")
    if elem.VR not in BINARY_VRS and " or " not in str(elem.VR):
        raise NotFound("the attribute at that location is not bulk data")
    rendition = negotiate_frames(ranges, NATIVE, single_allowed=True)
    if rendition.media_type != OCTET_STREAM:
        raise NotAcceptable(f"bulk data is sent as {OCTET_STREAM}")
    vr = "OW" if " or " in str(elem.VR) else str(elem.VR)
    value = to_little_endian(bytes(elem.value), vr,
                             little_endian=inst.transfer_syntax_uid != str(ExplicitVRBigEndian))
    return rendition, [value]
