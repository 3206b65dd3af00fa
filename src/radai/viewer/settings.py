"""Settings of the OHIF viewer radai serves (``[viewer]`` in radai.toml, ``RADAI_VIEWER__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ViewerSettings(BaseModel):
    """Where the OHIF build is and how the viewer behaves."""

    model_config = ConfigDict(extra="forbid")

    #: The ``dist`` folder of ``@ohif/app``; default ``node_modules/@ohif/app/dist``
    #: (fetched by scripts/npm-deps.sh).
    dist_dir: Path | None = None
    #: Web workers OHIF may start to decode images (each holds its own codecs).
    max_web_workers: int = Field(default=2, ge=1, le=16)
