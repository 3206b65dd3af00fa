"""Transfer syntaxes radai accepts and stores as received (PS3.5 §10, Annex A)."""

from __future__ import annotations

from pydicom import uid

#: Uncompressed transfer syntaxes (PS3.5 A.1, A.2, A.5 deflate).
UNCOMPRESSED = (
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,  # retired, still sent by old modalities
)

#: Compressed transfer syntaxes (PS3.5 A.4): RLE, JPEG, JPEG-LS, JPEG 2000.
COMPRESSED = (
    uid.RLELossless,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
)

ACCEPTED_TRANSFER_SYNTAXES: frozenset[str] = frozenset(str(t) for t in UNCOMPRESSED + COMPRESSED)
