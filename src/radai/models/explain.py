"""Heatmaps: where in the image a finding's score comes from.

- Grad-CAM (Selvaraju et al., ICCV 2017) on the torch runtime: the last convolution's
  activations weighted by the spatially averaged gradient of the finding's score,
  rectified, upsampled to the input size.
- Occlusion sensitivity (Zeiler & Fergus, ECCV 2014) on any runtime: the drop of the
  finding's probability when each cell of a grid is covered by the image's mean; the
  covered copies run as batches, so it costs grid² forward passes in a few batches.

Both return an H×W float32 map in 0..1 over the model input's rows and columns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PIL import Image

from radai.models.runtimes import TorchRunner, first_tensor


def _upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows, cols = size
    img = Image.fromarray(np.ascontiguousarray(cam, dtype=np.float32), "F")
    return np.asarray(img.resize((cols, rows), resample=Image.Resampling.BILINEAR), dtype=np.float32)


def _unit(heat: np.ndarray) -> np.ndarray:
    heat = np.clip(heat, 0.0, None)
    top = float(heat.max())
    return (heat / top).astype(np.float32) if top > 0 else np.zeros(heat.shape, dtype=np.float32)


def gradcam(runner: TorchRunner, sample: np.ndarray, *, column: int, size: tuple[int, int],
            to_probabilities: Callable[[object], object]) -> np.ndarray:
    """Grad-CAM of output ``column`` for one input ``sample`` (no batch axis).

    ``to_probabilities`` maps the model's raw output tensor to probabilities (identity
    for models that output them). Raises ValueError if the model has no 2D convolution.
    """
    import torch

    convs = [m for m in runner.module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no 2D convolution for Grad-CAM")
    layer = convs[-1]
    captured: dict[str, torch.Tensor] = {}

    owner = threading.get_ident()

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        # Inference may run on other threads while the hook is on: only this call's pass counts.
        if threading.get_ident() != owner:
            return
        output.retain_grad()
        captured["activations"] = output

    with runner.explain_lock:
        handle = layer.register_forward_hook(keep)
        try:
            x = torch.from_numpy(np.ascontiguousarray(sample[None], dtype=np.float32)).to(runner.device)
            with torch.enable_grad():
                out = first_tensor(runner.module(x))
                probs = to_probabilities(out)
                assert isinstance(probs, torch.Tensor)
                score = probs[0, column]
                runner.module.zero_grad(set_to_none=True)
                score.backward()  # type: ignore[no-untyped-call]
        finally:
            handle.remove()
        acts = captured["activations"]
        grads = acts.grad
        if grads is None:
            raise ValueError("no gradient reached the last convolution")
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * acts).sum(dim=1))[0].detach().float().cpu().numpy()
    return _unit(_upsample(cam, size))


def occlusion(run: Callable[[np.ndarray], np.ndarray], sample: np.ndarray, *, column: int,
              size: tuple[int, int], spatial_axes: tuple[int, int], grid: int,
              to_probabilities: Callable[[np.ndarray], np.ndarray], batch_size: int) -> np.ndarray:
    """Occlusion sensitivity of output ``column`` for one input ``sample`` (no batch axis)."""
    ra, ca = spatial_axes
    rows, cols = sample.shape[ra], sample.shape[ca]
    r_edges = np.linspace(0, rows, grid + 1).round().astype(int)
    c_edges = np.linspace(0, cols, grid + 1).round().astype(int)
    fill = sample.mean(axis=spatial_axes, keepdims=True)
    variants = []
    for i in range(grid):
        for j in range(grid):
            v = sample.copy()
            index: list[slice] = [slice(None)] * sample.ndim
            index[ra] = slice(r_edges[i], r_edges[i + 1])
            index[ca] = slice(c_edges[j], c_edges[j + 1])
            patch = v[tuple(index)]
            v[tuple(index)] = np.broadcast_to(fill, patch.shape)
            variants.append(v)
    batch = np.stack([sample, *variants])
    outputs = np.concatenate([run(batch[k:k + batch_size]) for k in range(0, len(batch), batch_size)])
    probs = to_probabilities(outputs)[:, column]
    drop = (probs[0] - probs[1:]).reshape(grid, grid).astype(np.float32)
    # Nearest cells → the grid laid over the image, then smoothed to the input size.
    return _unit(_upsample(drop, size))
