"""Manifest-driven models: a registered package → a :class:`~radai.models.api.LoadedModel`.

:class:`ManifestModel` implements the whole contract from the manifest alone (selection
from ``scope``, the pixel pipeline from ``input``, batching from ``resources``, scores
from ``outputs``, heatmaps per ``runtime.explain``), so packages need no code; a package
with ``runtime.kind: python`` supplies its own LoadedModel instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from radai.models.api import (
    DefectCategory,
    FindingScore,
    InstanceRef,
    LoadedModel,
    ModelDefect,
)
from radai.models.manifest import Manifest
from radai.models.preprocess import prepare_input
from radai.models.runtimes import OnnxRunner, Runner, TorchRunner, torch_device

if TYPE_CHECKING:
    from radai.config import Settings
    from radai.models.registry import ModelRecord
    from radai.models.settings import ModelsSettings

log = logging.getLogger(__name__)

#: Image storage SOP classes are recognised by having rows and columns in the index;
#: these are never model inputs even when they do (presentation states, SR, KOS, SEG).
_NOT_INPUTS = ("1.2.840.10008.5.1.4.1.1.11.", "1.2.840.10008.5.1.4.1.1.88.",
               "1.2.840.10008.5.1.4.1.1.66.", "1.2.840.10008.5.1.4.1.1.104.")


def resolve_file(name: str, package_dir: Path) -> Path:
    """The file a manifest names: ``pkg:DIST/PATH`` inside an installed Python package
    (located without importing it), else a path relative to the package folder."""
    if name.startswith("pkg:"):
        dist, _, rel = name.removeprefix("pkg:").partition("/")
        spec = importlib.util.find_spec(dist) if dist else None
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"Python package {dist!r} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / rel
    else:
        root = package_dir.resolve()
        path = (package_dir / name).resolve()
        if not path.is_relative_to(root):
            raise FileNotFoundError(f"{name} is outside the package")
    if not path.is_file():
        raise FileNotFoundError(f"{name} does not exist")
    return path


def choose_runtime(manifest: Manifest, settings: ModelsSettings) -> str:
    """``onnx``, ``torch`` or ``python``: the runtime a package runs on here."""
    kind = manifest.runtime.kind
    if kind != "onnx":
        return kind
    if settings.onnx_packages_run_on == "onnxruntime":
        return "onnx"
    if settings.onnx_packages_run_on == "torch":
        return "torch"
    if manifest.resources.device == "cpu":
        return "onnx"
    import torch

    return "torch" if torch.cuda.is_available() else "onnx"


def load_model(record: ModelRecord, settings: Settings, *, runtime: str) -> LoadedModel:
    """Build the LoadedModel of ``record`` on ``runtime``; ModelDefect(SERVICE_UNAVAILABLE) if it fails."""
    manifest = record.manifest
    folder = Path(record.source)
    try:
        if runtime == "python":
            return _python_model(manifest, folder)
        model_file = _model_file(manifest, folder, settings)
        runner: Runner
        if runtime == "onnx":
            if model_file.suffix != ".onnx":
                raise ValueError(f"ONNX Runtime cannot load a {model_file.suffix} file")
            runner = OnnxRunner(model_file, input_name=manifest.runtime.input_name,
                                output_name=manifest.runtime.output_name,
                                threads=settings.models.onnx_threads)
        elif runtime == "torch":
            import torch

            if settings.models.torch_threads:
                torch.set_num_threads(settings.models.torch_threads)
            if manifest.runtime.source is not None and model_file.with_suffix(".pt2").is_file():
                # The export made a torch.export program from the same trace as the ONNX graph.
                model_file = model_file.with_suffix(".pt2")
            runner = TorchRunner.from_file(model_file, device=torch_device(manifest.resources.device))
        else:
            raise ValueError(f"unknown runtime {runtime!r}")
    except ModelDefect:
        raise
    except Exception as exc:
        log.error("model %s cannot be loaded on %s: %s", record.ref, runtime, exc)
        raise ModelDefect(DefectCategory.SERVICE_UNAVAILABLE,
                          f"model {record.ref} cannot be loaded: {exc}", retryable=True) from exc
    log.info("model %s loaded on %s", record.ref, runtime)
    return ManifestModel(manifest, runner)


def _model_file(manifest: Manifest, folder: Path, settings: Settings) -> Path:
    source = manifest.runtime.source
    if source is not None:
        from radai.models.keras_export import onnx_from_keras

        return onnx_from_keras(resolve_file(source.file, folder), manifest.input,
                               settings.models.resolved_cache_dir())
    assert manifest.runtime.file is not None
    return resolve_file(manifest.runtime.file, folder)


def _python_model(manifest: Manifest, folder: Path) -> LoadedModel:
    assert manifest.runtime.entry_point is not None
    module_name, _, attr = manifest.runtime.entry_point.partition(":")
    local = folder / (module_name.replace(".", "/") + ".py")
    if local.is_file():
        # A module inside the package folder is loaded from there, not from sys.path.
        unique = f"radai_model_{manifest.id.replace('-', '_').replace('.', '_')}_{module_name}"
        spec = importlib.util.spec_from_file_location(unique, local)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part)
    model = factory(manifest=manifest, package_dir=folder)
    for method in ("select", "prepare", "infer", "score", "explain"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"{manifest.runtime.entry_point} returned an object without {method}()")
    return model  # type: ignore[no-any-return]


def probabilities(outputs: np.ndarray, kind: str) -> np.ndarray:
    """Output rows as probabilities per the manifest's ``outputs.kind``."""
    x = np.asarray(outputs, dtype=np.float64)
    if kind == "logits_softmax":
        x = x - x.max(axis=1, keepdims=True)
        e = np.exp(x)
        return np.asarray(e / e.sum(axis=1, keepdims=True))
    if kind == "logits_sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-x)))
    return x


class ManifestModel:
    """A LoadedModel driven by its manifest (see the module docstring)."""

    def __init__(self, manifest: Manifest, runner: Runner) -> None:
        self.manifest = manifest
        self.runner = runner

    @property
    def model_id(self) -> str:
        """The manifest's id."""
        return self.manifest.id

    @property
    def version(self) -> str:
        """The manifest's version."""
        return self.manifest.version

    @property
    def runtime(self) -> str:
        """``onnx`` or ``torch``."""
        return self.runner.kind

    # --- selection ------------------------------------------------------------------

    def select(self, instances: list[InstanceRef]) -> list[InstanceRef]:
        """The images within the manifest's scope, thinned evenly to ``input.max_images``.

        Raises ModelDefect(INPUT_NOT_SUITED) naming what did not fit (modality, body
        part, view, image count); the message holds defined terms only, no patient data.
        """
        scope = self.manifest.scope
        spec = self.manifest.input
        images = [i for i in instances if i.rows and i.columns
                  and not i.sop_class_uid.startswith(_NOT_INPUTS)]
        if not images:
            raise _unsuited("the study has no images")
        steps: list[tuple[str, Callable[[InstanceRef], bool]]] = [
            ("modality " + "/".join(scope.modalities), lambda i: i.modality.upper() in scope.modalities),
        ]
        if scope.sop_classes:
            steps.append(("SOP class", lambda i: i.sop_class_uid in scope.sop_classes))
        if scope.body_parts:
            steps.append(("body part " + "/".join(scope.body_parts),
                          lambda i: _fits(i.body_part_examined, scope.body_parts, scope.missing_body_part)))
        if scope.views:
            steps.append(("view " + "/".join(scope.views),
                          lambda i: _fits(i.view_position, scope.views, scope.missing_view)))
        if spec.frames == "all":
            steps.append(("multi-frame image", lambda i: (i.number_of_frames or 1) > 1))
        for what, keep in steps:
            remaining = [i for i in images if keep(i)]
            if not remaining:
                raise _unsuited(f"no image of the study has {what}")
            images = remaining
        if len(images) < spec.min_images:
            raise _unsuited(f"the study has {len(images)} suitable images; "
                            f"the model needs at least {spec.min_images}")
        if len(images) > spec.max_images:
            picks = np.linspace(0, len(images) - 1, spec.max_images).round().astype(int)
            images = [images[k] for k in sorted(set(picks.tolist()))]
        return images

    # --- inputs and inference ---------------------------------------------------------

    def prepare(self, ds: Dataset) -> np.ndarray:
        """The model input of one image (pixel pipeline of radai.models.preprocess)."""
        modality = str(ds.get("Modality", "")).upper()
        if modality not in self.manifest.scope.modalities:
            raise _unsuited(f"modality {modality or '(empty)'} is not one the model accepts")
        return prepare_input(ds, self.manifest.input)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Raw output rows for ``batch``, run in chunks of ``resources.max_batch_size``."""
        expected = self.input_shape
        if batch.ndim != len(expected) + 1 or any(
                e is not None and e != s for e, s in zip(expected, batch.shape[1:], strict=True)):
            raise ModelDefect(DefectCategory.MODEL_ERROR,
                              f"input batch shape {tuple(batch.shape)} does not match the model's "
                              f"input {expected}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.manifest.outputs.classes), dtype=np.float32)
        size = self.manifest.resources.max_batch_size
        try:
            out = np.concatenate([self.runner.run(batch[k:k + size])
                                  for k in range(0, batch.shape[0], size)])
        except Exception as exc:
            log.error("model %s failed on a batch: %s", self.manifest.ref, type(exc).__name__)
            raise ModelDefect(DefectCategory.MODEL_ERROR,
                              f"model {self.manifest.ref} failed ({type(exc).__name__})") from exc
        out = out.reshape(out.shape[0], -1)
        if out.shape != (batch.shape[0], self.manifest.outputs.classes):
            raise ModelDefect(DefectCategory.MODEL_ERROR,
                              f"model {self.manifest.ref} returned outputs of shape {out.shape}, "
                              f"expected {batch.shape[0]} rows of {self.manifest.outputs.classes}")
        return out.astype(np.float32)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Shape of one input (None for the frame count of 3D inputs)."""
        spec = self.manifest.input
        rows, cols = spec.size
        if spec.dimensions == "3D":
            return (None, rows, cols, spec.channels) if spec.layout == "NHWC" else (
                spec.channels, None, rows, cols)
        return (rows, cols, spec.channels) if spec.layout == "NHWC" else (spec.channels, rows, cols)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Output rows as probabilities."""
        return probabilities(outputs, self.manifest.outputs.kind)

    def score(self, outputs: np.ndarray) -> list[FindingScore]:
        """One FindingScore per manifest finding over a task's output rows.

        The study's probability is the maximum (or mean, per ``outputs.aggregate``) over
        its images; ``input_index`` points at the image with the highest probability.
        """
        if outputs.ndim != 2 or outputs.shape[0] == 0:
            raise ModelDefect(DefectCategory.MODEL_ERROR, "no output rows to score")
        probs = self.probabilities(outputs)
        result = []
        for f in self.manifest.outputs.findings:
            column = probs[:, f.index]
            best = int(np.argmax(column))
            p = float(column.max() if self.manifest.outputs.aggregate == "max" else column.mean())
            p = min(1.0, max(0.0, p))
            result.append(FindingScore(
                code=f.code.to_code(), label=f.label, probability=p, threshold=f.threshold,
                positive=p >= f.threshold, urgency=f.urgency, input_index=best,
                extra={"images": int(probs.shape[0]), "aggregate": self.manifest.outputs.aggregate},
            ))
        return result

    # --- heatmaps ---------------------------------------------------------------------

    def _column(self, finding: FindingScore) -> int:
        for f in self.manifest.outputs.findings:
            if f.code.to_code() == finding.code:
                return f.index
        raise ValueError(f"finding {finding.label!r} is not one of this model's findings")

    def explain(self, inputs: np.ndarray, finding: FindingScore) -> np.ndarray:
        """A 0..1 heatmap over the rows and columns of ``inputs[finding.input_index]``.

        Grad-CAM on the torch runtime (when the model has convolutions), occlusion
        sensitivity otherwise, unless the manifest's ``runtime.explain`` says which.
        """
        from radai.models import explain

        sample = inputs[finding.input_index]
        column = self._column(finding)
        method = self.manifest.runtime.explain
        if method == "none":
            raise ModelDefect(DefectCategory.MODEL_ERROR, f"model {self.manifest.ref} gives no heatmaps")
        size = self.manifest.input.size
        spatial = (0, 1) if self.manifest.input.layout == "NHWC" else (1, 2)
        kind = self.manifest.outputs.kind
        try:
            if isinstance(self.runner, TorchRunner) and method in ("auto", "gradcam"):
                try:
                    return explain.gradcam(self.runner, sample, column=column, size=size,
                                           to_probabilities=_torch_probabilities(kind))
                except ValueError:
                    if method == "gradcam":
                        raise
            return explain.occlusion(self.runner.run, sample, column=column, size=size,
                                     spatial_axes=spatial, grid=self.manifest.runtime.occlusion_grid,
                                     to_probabilities=lambda o: probabilities(o, kind),
                                     batch_size=self.manifest.resources.max_batch_size)
        except ModelDefect:
            raise
        except Exception as exc:
            raise ModelDefect(DefectCategory.MODEL_ERROR,
                              f"heatmap of model {self.manifest.ref} failed ({type(exc).__name__})") from exc


def _torch_probabilities(kind: str) -> Callable[[object], object]:
    def convert(out: object) -> object:
        import torch

        assert isinstance(out, torch.Tensor)
        out = out.reshape(out.shape[0], -1)
        if kind == "logits_softmax":
            return torch.softmax(out, dim=1)
        if kind == "logits_sigmoid":
            return torch.sigmoid(out)
        return out

    return convert


def _fits(value: str, accepted: list[str], missing: str) -> bool:
    value = value.strip().upper()
    if not value:
        return missing == "accept"
    return value in accepted


def _unsuited(reason: str) -> ModelDefect:
    return ModelDefect(DefectCategory.INPUT_NOT_SUITED, reason)
