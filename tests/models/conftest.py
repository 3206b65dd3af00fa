"""Fixtures of the model tests: one ONNX export cache and one Keras reference per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from radai.archive.models import Instance, Series
from radai.archive.service import Archive
from radai.config import Settings, load_settings
from radai.models.api import InstanceRef
from tests.fixtures.data import pneumonia_images_dir
from tests.fixtures.peers import free_port

#: The original package's preprocessing, run by Keras itself (KERAS_BACKEND=torch):
#: ImageDataGenerator.flow_from_dataframe loads with load_img (RGB, nearest) and applies
#: the Xception preprocess_input; the model's two outputs are logits.
KERAS_REFERENCE = r"""
import json, sys
import numpy as np
import keras
from keras.applications.xception import preprocess_input
from keras.utils import img_to_array, load_img
model = keras.models.load_model(sys.argv[1], compile=False)
paths = sys.argv[2:]
batch = np.stack([img_to_array(load_img(p, color_mode="rgb", target_size=(150, 150),
                                        interpolation="nearest")) for p in paths])
logits = model.predict(preprocess_input(batch), verbose=0)
print(json.dumps({p.rsplit("/", 1)[-1]: [float(v) for v in row] for p, row in zip(paths, logits)}))
"""



def model_settings(tmp_path: Path, cache: Path, **extra: object) -> Settings:
    """Settings for a radai on SQLite in ``tmp_path`` sharing the session's model cache."""
    return load_settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'radai.db'}",
                         http_port=free_port(), dicom_port=free_port(),
                         models={"cache_dir": str(cache), **extra})


def pneumonia_keras_file() -> Path:
    """The .keras file inside pneumonia-model-package."""
    files = sorted((pneumonia_images_dir().parents[2] / "trained_models").glob("*.keras"))
    assert len(files) == 1
    return files[0]


@pytest.fixture(scope="session")
def keras_reference() -> dict[str, list[float]]:
    """Logits of the original Keras model for each of the 16 bundled JPEGs (by file name)."""
    images = sorted(str(p) for p in pneumonia_images_dir().glob("*.jpeg"))
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, "-c", KERAS_REFERENCE, str(pneumonia_keras_file()), *images],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, list[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def instance_refs(archive: Archive) -> list[InstanceRef]:
    """InstanceRefs of every stored instance, from the index (as the executor builds them)."""
    with archive.db.session() as s:
        rows = s.execute(select(Instance, Series).join(Series).order_by(Instance.id)).all()
    return [InstanceRef(sop_instance_uid=i.sop_instance_uid, sop_class_uid=i.sop_class_uid,
                        series_instance_uid=se.series_instance_uid, modality=se.modality,
                        body_part_examined=se.body_part_examined, view_position=se.view_position,
                        series_description=se.series_description, rows=i.rows, columns=i.columns,
                        number_of_frames=i.number_of_frames) for i, se in rows]
