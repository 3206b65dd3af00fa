"""DICOMweb (PS3.18): STOW-RS, QIDO-RS and WADO-RS (including rendered resources).

The routes live in :mod:`radai.dicomweb.router` (mounted under ``/dicom-web``); the work
is done by the service modules :mod:`~radai.dicomweb.stow`, :mod:`~radai.dicomweb.qido`,
:mod:`~radai.dicomweb.wado` and :mod:`~radai.dicomweb.rendered`, which read and write
through :class:`radai.archive.service.Archive` and :mod:`radai.archive.query`.
"""
