"""Errors of the DICOMweb service, each carrying its HTTP status (PS3.18 §8.5).

They derive from Starlette's ``HTTPException`` so that FastAPI answers them as
``{"detail": message}`` without any handler of ours. Messages name attributes,
parameters and media types, never values taken from a dataset.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException


class DicomWebError(HTTPException):
    """A request DICOMweb cannot answer as asked."""

    status = 400

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(self.status, message, dict(headers) if headers else None)
        self.message = message


class BadRequest(DicomWebError):
    """400: a malformed request (bad UID, parameter, multipart body)."""

    status = 400


class NotFound(DicomWebError):
    """404: no such study, series, instance, frame or bulk data element."""

    status = 404


class NotAcceptable(DicomWebError):
    """406: none of the media types or transfer syntaxes the client accepts can be given."""

    status = 406


class PayloadTooLarge(DicomWebError):
    """413: the request body is larger than radai accepts."""

    status = 413


class UnsupportedMediaType(DicomWebError):
    """415: the request body is not of a media type radai stores."""

    status = 415
