"""The pneumonia model through the DICOM path predicts what the original Keras model does.

Each of the 16 radiographs bundled with pneumonia-model-package enters as a user would
bring it: ``radai import --as-dicom`` → archive → index → selection → pixel pipeline →
runtime. The reference is the original Keras model run by Keras on the JPEG with the
package's own preprocessing (computed in this session, see conftest.KERAS_REFERENCE).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from pydicom import dcmread

from radai.app import Radai
from radai.cli import main
from tests.fixtures.data import pneumonia_images_dir
from tests.models.conftest import instance_refs, model_settings

PNEUMONIA = ("pneumonia-peds", "0.3.0")


def _import_as_dicom(tmp_path: Path, settings_data_dir: Path, cache: Path) -> None:
    rows = tmp_path / "images.csv"
    with rows.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "patient_id", "sex", "birth_date", "accession"])
        for i, image in enumerate(sorted(pneumonia_images_dir().glob("*.jpeg"))):
            w.writerow([str(image), image.stem[:64], "F" if i % 2 else "M", "20180101", f"A{i:03d}"])
    result = CliRunner().invoke(main, [
        "import", "--as-dicom", "--data-dir", str(settings_data_dir), "--csv", str(rows),
        "--modality", "CR", "--body-part", "CHEST", "--view-position", "PA"],
        env={"RADAI_DATABASE_URL": f"sqlite:///{tmp_path / 'radai.db'}",
             "RADAI_MODELS__CACHE_DIR": str(cache)})
    assert result.exit_code == 0, result.output
    assert "stored: 16" in result.output and "studies: 16" in result.output


def test_sixteen_radiographs_match_the_keras_model(tmp_path: Path, models_cache: Path,
                                                   keras_reference: dict[str, list[float]]) -> None:
    settings = model_settings(tmp_path, models_cache)
    _import_as_dicom(tmp_path, settings.data_dir, models_cache)
    radai = Radai(settings)
    radai.prepare()
    try:
        model = radai.models.load(*PNEUMONIA, runtime="onnx")
        refs = instance_refs(radai.archive)
        assert len(refs) == 16
        # Every converted radiograph is in the model's scope (CR, CHEST, PA).
        # Selection keeps at most input.max_images (4), evenly spread.
        chosen = model.select(refs)
        assert len(chosen) == 4 and chosen[0] == refs[0] and chosen[-1] == refs[-1]
        names, inputs = [], []
        for ref in refs:
            assert model.select([ref]) == [ref]
            ds = dcmread(radai.archive.instance_path(ref.sop_instance_uid))
            names.append(f"{ds.PatientID}.jpeg")
            inputs.append(model.prepare(ds))
        logits = model.infer(np.stack(inputs))
    finally:
        radai.stop()
    expected = np.asarray([keras_reference[n] for n in names])
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    predicted = dict(zip(names, logits.argmax(axis=1).tolist(), strict=True))
    assert predicted == {n: int(np.argmax(keras_reference[n])) for n in names}
    # The model's known behaviour on these images: 13 of 16 right at the argmax.
    wrong = sorted(n for n, p in predicted.items() if p != (0 if n.startswith("NORMAL") else 1))
    assert wrong == ["NORMAL2-IM-1438-0001.jpeg", "person1949_bacteria_4880.jpeg",
                     "person1950_bacteria_4881.jpeg"]
    # The study-level finding of an image predicted pneumonia is positive.
    scores = model.score(logits[[names.index("person1946_bacteria_4874.jpeg")]])
    assert scores[0].positive and scores[0].code.value == "233604007"
