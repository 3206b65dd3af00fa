"""Runtimes: ONNX Runtime on CPU, and PyTorch (CUDA when available, else CPU).

A runner takes a float32 batch (batch axis first) and returns the raw output rows.
ONNX Runtime is used with the CPU execution provider only: the GPU machines radai
runs on have no CUDA provider for it, so GPU inference goes through PyTorch. PyTorch
runs ``torch.export`` programs (``.pt2``) and ONNX graphs converted with onnx2torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from radai.logs import thread_warnings

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Runs batches through one model."""

    #: ``onnx`` or ``torch``.
    kind: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs, one row per input row."""


class OnnxRunner:
    """An ONNX Runtime session on the CPU execution provider (thread-safe ``run``)."""

    kind = "onnx"

    def __init__(self, path: Path, *, input_name: str | None = None, output_name: str | None = None,
                 threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        self.input_name = _pick(input_name, [i.name for i in inputs], "input")
        self.output_name = _pick(output_name, [o.name for o in outputs], "output")
        batch_dim = next(i.shape for i in inputs if i.name == self.input_name)[0]
        #: A graph exported with a fixed batch of 1 is fed one row at a time.
        self.dynamic_batch = not isinstance(batch_dim, int) or batch_dim != 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs of ``batch`` (float32)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.dynamic_batch:
            return np.asarray(self.session.run([self.output_name], {self.input_name: batch})[0])
        rows = [self.session.run([self.output_name], {self.input_name: batch[i:i + 1]})[0]
                for i in range(batch.shape[0])]
        return np.concatenate(rows, axis=0)


def _pick(wanted: str | None, names: list[str], what: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"the model has no {what} named {wanted!r} (it has {', '.join(names)})")
        return wanted
    if len(names) != 1:
        raise ValueError(f"the model has {len(names)} {what}s; the manifest must name one")
    return names[0]


class TorchRunner:
    """A ``torch.nn.Module`` in eval mode on one device."""

    kind = "torch"

    def __init__(self, module: torch.nn.Module, *, device: str, exported: bool = False) -> None:
        # A torch.export program was traced in eval mode and refuses .eval() itself.
        self.module = module.to(device) if exported else module.eval().to(device)
        self.device = device
        # Grad-CAM registers hooks on the module: one explanation at a time.
        self.explain_lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path, *, device: str) -> TorchRunner:
        """Load a ``.pt2`` (torch.export) program or convert an ``.onnx`` graph."""
        import torch

        if path.suffix == ".pt2":
            program = torch.export.load(str(path))
            if device != "cpu":
                from torch.export.passes import move_to_device_pass

                program = move_to_device_pass(program, device)
            return cls(program.module(), device=device, exported=True)
        if path.suffix == ".onnx":
            return cls(onnx_to_torch(path), device=device)
        raise ValueError(f"the torch runtime loads .pt2 or .onnx files, not {path.suffix}")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs of ``batch`` (float32, returned on the CPU)."""
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
                              .to(self.device))
        return first_tensor(out).float().cpu().numpy()


def first_tensor(out: Any) -> torch.Tensor:
    """The first output of a module that may return a tuple, list or dict."""
    if isinstance(out, tuple | list):
        return first_tensor(out[0])
    if isinstance(out, dict):
        return first_tensor(next(iter(out.values())))
    return out  # type: ignore[no-any-return]


def torch_device(preference: str) -> str:
    """``cuda`` when CUDA is available and allowed, else ``cpu``; ValueError if a GPU is required."""
    import torch

    if preference == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if preference == "gpu":
        raise ValueError("the model requires a GPU and none is available")
    return "cpu"


_convert_lock = threading.Lock()


def onnx_to_torch(path: Path) -> torch.nn.Module:
    """An ONNX graph as a ``torch.nn.Module`` (onnx2torch).

    onnx2torch imports torchvision when it is imported, only for its NonMaxSuppression
    and RoiAlign converters. The torchvision builds on PyPI link CUDA libraries and do
    not load beside a CPU build of torch, so where torchvision cannot be imported radai
    loads onnx2torch's other converters directly; graphs using those two operators then
    fail to convert with onnx2torch's own "not implemented" error.
    """
    import onnx

    with _convert_lock:
        convert = _onnx2torch_convert()
        model = onnx.load(str(path))
        with thread_warnings():  # onnx2torch's conversion notes, dropped (this thread only)
            module = convert(model)
    return module  # type: ignore[no-any-return]


def _onnx2torch_convert() -> Any:
    if "onnx2torch.converter" in sys.modules:
        return sys.modules["onnx2torch.converter"].convert
    try:
        import onnx2torch

        return onnx2torch.convert
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            raise
    except RuntimeError:  # a torchvision build whose operators do not load with this torch
        pass
    for name in [n for n in sys.modules if n == "onnx2torch" or n.startswith("onnx2torch.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("onnx2torch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("onnx2torch is not installed", name="onnx2torch")
    root = Path(next(iter(spec.submodule_search_locations)))
    package = types.ModuleType("onnx2torch")
    package.__path__ = [str(root)]
    package.__spec__ = spec
    sys.modules["onnx2torch"] = package
    converters = types.ModuleType("onnx2torch.node_converters")
    converters.__path__ = [str(root / "node_converters")]
    sys.modules["onnx2torch.node_converters"] = converters
    for file in sorted((root / "node_converters").glob("*.py")):
        if file.stem not in ("__init__", "nms", "roialign"):
            importlib.import_module(f"onnx2torch.node_converters.{file.stem}")
    registry = importlib.import_module("onnx2torch.node_converters.registry")
    converters.get_converter = registry.get_converter  # type: ignore[attr-defined]
    return importlib.import_module("onnx2torch.converter").convert
