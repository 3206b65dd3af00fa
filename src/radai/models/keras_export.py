"""Keras 3 models exported once to ONNX (and PyTorch), cached by the ``.keras`` file's SHA-256.

The export runs in a child process with ``KERAS_BACKEND=torch`` (the backend is chosen
when Keras is first imported, and Keras with PyTorch takes memory radai need not keep):
the Keras model is wrapped in a ``torch.nn.Module``, traced once with ``torch.export``
(dynamic batch axis), saved as ``model.pt2`` for the torch runtime and converted with
``torch.onnx.export(dynamo=True)`` to ``model.onnx`` for ONNX Runtime. (The ONNX graph
uses opset 20 operators, e.g. Pad, that onnx2torch cannot convert, so the torch runtime
takes the ``torch.export`` program made from the same trace.) The child checks that both
reproduce Keras's outputs (largest difference at most 1e-4) before the folder is moved
into the cache; concurrent first uses wait on a file lock instead of exporting twice.

Run as ``python -m radai.models.keras_export SOURCE.keras TARGET.onnx ROWS COLS CHANNELS LAYOUT``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from radai.models.manifest import InputSpec

log = logging.getLogger(__name__)

#: The largest difference between Keras's and ONNX Runtime's outputs accepted.
TOLERANCE = 1e-4
EXPORT_TIMEOUT_SECONDS = 1800
#: Version of what an export folder holds (model.onnx, model.pt2, export.json).
EXPORT_FORMAT = 2


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_from_keras(source: Path, spec: InputSpec, cache_dir: Path) -> Path:
    """The cached ONNX export of ``source`` (built now if it is not cached yet)."""
    sha = file_sha256(source)
    folder = cache_dir / f"keras-{sha}-v{EXPORT_FORMAT}"
    target = folder / "model.onnx"
    if (folder / "export.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f"keras-{sha}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "export.json").is_file():
            return target
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
        try:
            started = time.monotonic()
            rows, cols = spec.size
            env = {**os.environ, "KERAS_BACKEND": "torch"}
            proc = subprocess.run(
                [sys.executable, "-m", "radai.models.keras_export", str(source), str(work / "model.onnx"),
                 str(rows), str(cols), str(spec.channels), spec.layout],
                env=env, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_SECONDS, check=False)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"export of {source.name} to ONNX failed: {tail[0]}")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            report["seconds"] = round(time.monotonic() - started, 1)
            report["source_sha256"] = sha
            (work / "export.json").write_text(json.dumps(report, indent=2))
            shutil.rmtree(folder, ignore_errors=True)
            work.rename(folder)
            log.info("exported %s to ONNX in %.0f s (largest difference %.2g)", source.name,
                     report["seconds"], report["max_abs_diff"])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _export(source: Path, target: Path, shape: tuple[int, int, int, int]) -> dict[str, object]:
    """Export in this process (needs ``KERAS_BACKEND=torch`` set before Keras is imported)."""
    import keras
    import numpy as np
    import onnxruntime as ort
    import torch

    if keras.backend.backend() != "torch":
        raise RuntimeError("the export needs KERAS_BACKEND=torch")
    model = keras.models.load_model(str(source), compile=False)

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)  # type: ignore[no-any-return]

    wrapper = Wrapper().eval()
    example = torch.zeros(2, *shape[1:])
    program = torch.export.export(wrapper, (example,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    torch.export.save(program, str(target.with_suffix(".pt2")))
    torch.onnx.export(program, (example,), str(target), dynamo=True,
                      input_names=["input"], output_names=["output"], verbose=False)
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, *shape[1:])).astype(np.float32)
    expected = np.asarray(model.predict(x, verbose=0))
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    onnx_diff = float(np.abs(expected - session.run(None, {"input": x})[0]).max())
    reloaded = torch.export.load(str(target.with_suffix(".pt2"))).module()
    with torch.inference_mode():
        torch_diff = float(np.abs(expected - reloaded(torch.from_numpy(x)).numpy()).max())
    for runtime, diff in (("ONNX Runtime", onnx_diff), ("PyTorch", torch_diff)):
        if not diff <= TOLERANCE:
            raise RuntimeError(f"{runtime} differs from Keras by {diff:.3g}")
    return {"max_abs_diff": max(onnx_diff, torch_diff), "onnx_max_abs_diff": onnx_diff,
            "torch_max_abs_diff": torch_diff, "keras": keras.__version__, "torch": torch.__version__}


def main(argv: list[str]) -> int:
    """Entry of the export child process."""
    source, target, rows, cols, channels, layout = argv
    r, c, ch = int(rows), int(cols), int(channels)
    shape = (2, r, c, ch) if layout == "NHWC" else (2, ch, r, c)
    report = _export(Path(source), Path(target), shape)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
