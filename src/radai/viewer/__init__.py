"""The OHIF viewer (``@ohif/app``, prebuilt from npm) served by radai under ``/viewer/``."""
