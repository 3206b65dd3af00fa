"""Settings of the model registry and runtimes (``[models]`` in radai.toml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelsSettings(BaseModel):
    """Where model packages and derived model files live, and how runtimes use the CPU."""

    model_config = ConfigDict(extra="forbid")

    #: Files built at first use (e.g. ONNX exported from Keras), keyed by the source's
    #: SHA-256; default ``$XDG_CACHE_HOME/radai/models`` or ``~/.cache/radai/models``.
    cache_dir: Path | None = None
    #: Where ``radai models import`` copies packages; default ``<data_dir>/models``.
    packages_dir: Path | None = None
    #: Register the packages that ship with radai.
    builtin: bool = True
    #: ONNX Runtime intra-op threads per model (0: ONNX Runtime's default, all cores).
    onnx_threads: int = Field(default=0, ge=0, le=1024)
    #: PyTorch intra-op threads on CPU (0: leave PyTorch's default).
    torch_threads: int = Field(default=0, ge=0, le=1024)
    #: Which runtime an ONNX package uses: ``auto`` is PyTorch (converted with onnx2torch)
    #: where CUDA is available and the package allows a GPU, else ONNX Runtime on CPU.
    onnx_packages_run_on: Literal["auto", "onnxruntime", "torch"] = "auto"

    def resolved_cache_dir(self) -> Path:
        """The cache folder (not created here)."""
        if self.cache_dir is not None:
            return self.cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "radai" / "models"
