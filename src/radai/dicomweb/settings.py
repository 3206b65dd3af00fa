"""Settings of the DICOMweb service (``[dicomweb]`` in radai.toml, ``RADAI_DICOMWEB__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DicomWebSettings(BaseModel):
    """Limits of the DICOMweb service."""

    model_config = ConfigDict(extra="forbid")

    #: The most results one QIDO-RS response holds; a client's larger ``limit`` is cut
    #: to this and the response says how many more there are (PS3.18 §8.3.4.4).
    qido_max_results: int = Field(default=1000, ge=1, le=100_000)
    #: STOW-RS parts up to this size are kept in memory while the request is read;
    #: larger parts are spooled to a temporary file in the data directory.
    stow_memory_part_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    #: The largest STOW-RS request body accepted (413 beyond it).
    stow_max_request_bytes: int = Field(default=16 * 1024**3, ge=1)
    #: Binary values longer than this are given as BulkDataURI in DICOM JSON
    #: (PS3.18 Annex F.2.7); shorter ones inline.
    bulk_data_threshold: int = Field(default=1024, ge=0)
    #: Longest side of a thumbnail when the client names no viewport (PS3.18 §10.4.1.3).
    thumbnail_size: int = Field(default=128, ge=16, le=4096)
