"""Model latency and throughput on this machine's CPU (no peer: figures for the report).

For each built-in model and runtime (ONNX Runtime; PyTorch on CPU): the median time of
one image (batch 1), the batched throughput (images/s at the manifest's batch size), the
time of the pixel pipeline for one real DICOM image, and the time of one heatmap
(Grad-CAM on PyTorch, occlusion sensitivity on ONNX Runtime). Inputs are real images:
pydicom-data's MR2_UNCR.dcm (brain) and RG1_UNCI.dcm (chest radiograph).

    .venv/bin/python benchmarks/models.py [--runs 7] [--cache DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.data import pydicom_data

from radai.config import load_settings
from radai.db import Database
from radai.models.registry import ModelRegistry

MODELS = {"brain-tumor-mri": "MR2_UNCR.dcm", "pneumonia-peds": "RG1_UNCI.dcm"}


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=None, help="models.cache_dir (default: the user cache)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, object] = {"data_dir": Path(tmp)}
        if args.cache:
            overrides["models"] = {"cache_dir": str(args.cache)}
        settings = load_settings(**overrides)
        db = Database(settings.resolved_database_url)
        db.migrate()
        registry = ModelRegistry(db=db, settings=settings)
        registry.sync()
        print(f"{'model':18} {'runtime':8} {'prepare ms':>10} {'1 image ms':>10} {'batch':>5} "
              f"{'images/s':>9} {'heatmap s':>9}")
        for model_id, sample in MODELS.items():
            record = registry.get(model_id)
            ds = dcmread(pydicom_data(sample))
            for runtime in ("onnx", "torch"):
                model = registry.load(model_id, record.version, runtime=runtime)
                prepare_s = median_seconds(lambda m=model, d=ds: m.prepare(d), args.runs)
                x = model.prepare(ds)
                one = median_seconds(lambda m=model, v=x: m.infer(v[None]), args.runs)
                size = record.manifest.resources.max_batch_size
                batch = np.repeat(x[None], size, axis=0)
                per_batch = median_seconds(lambda m=model, b=batch: m.infer(b), max(3, args.runs // 2))
                finding = model.score(model.infer(x[None]))[0]
                start = time.perf_counter()
                model.explain(x[None], finding)
                heat = time.perf_counter() - start
                print(f"{model_id:18} {runtime:8} {prepare_s * 1e3:10.1f} {one * 1e3:10.1f} {size:5d} "
                      f"{size / per_batch:9.1f} {heat:9.2f}", flush=True)
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
