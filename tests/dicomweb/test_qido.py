"""QIDO-RS (PS3.18 §10.6): matching, paging, includefield, required return attributes,
and precise 400s for invalid queries."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset

from radai.dicomweb.qido import INSTANCE_RETURN_KEYS, SERIES_RETURN_KEYS, STUDY_RETURN_KEYS
from tests.dicomweb.conftest import Web, sample
from tests.fixtures.data import to_bytes


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    return f"{tag_for_keyword(keyword):08X}"


def _values(items: list[dict[str, Any]], keyword: str) -> list[Any]:
    out = []
    for item in items:
        value = item[_tag(keyword)].get("Value")
        out.append(None if value is None else value[0] if len(value) == 1 else value)
    return out


def _names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(v["Alphabetic"] for v in _values(items, "PatientName"))


def _instance(name: str, salt: str, **attrs: Any) -> Dataset:
    ds = sample(name, salt)
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


class Archive:
    """Three patients' studies with known attributes."""

    def __init__(self, web: Web) -> None:
        # Study and patient attributes are the same in every instance of a study.
        study_a = {"PatientName": "DOE^JOHN", "PatientID": "P1", "StudyDate": "20200101",
                   "StudyTime": "101010", "AccessionNumber": "ACC1", "StudyDescription": "CHEST CT",
                   "PatientSex": "M", "PatientAge": "042Y"}
        a1 = _instance("CT_small.dcm", "qido-a1", SeriesNumber=1, InstanceNumber=1, **study_a)
        a2 = _instance("CT_small.dcm", "qido-a2", StudyInstanceUID=a1.StudyInstanceUID,
                       SeriesInstanceUID=a1.SeriesInstanceUID, InstanceNumber=2, SliceThickness="2.5",
                       **study_a)
        a3 = _instance("MR_small.dcm", "qido-a3", StudyInstanceUID=a1.StudyInstanceUID, SeriesNumber=2,
                       **study_a)
        b = _instance("MR_small_RLE.dcm", "qido-b", PatientName="DOE^JANE", PatientID="P2",
                      StudyDate="20210615", StudyTime="090000", StudyDescription="BRAIN MR")
        c = _instance("JPGLosslessP14SV1_1s_1f_8b.dcm", "qido-c", PatientName="SMITH^ANN",
                      PatientID="P3", StudyDate="20220101", StudyTime="230000")
        self.a1, self.a2, self.a3, self.b, self.c = a1, a2, a3, b, c
        r = web.stow([to_bytes(ds) for ds in (a1, a2, a3, b, c)])
        assert r.status_code == 200, r.text
        self.web = web

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.web.client.get("/dicom-web" + path, params=params)

    def ok(self, path: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/dicom+json"
        items: list[dict[str, Any]] = r.json()
        return items


@pytest.fixture
def archive(web: Web) -> Archive:
    return Archive(web)


def test_every_study_with_its_required_attributes(archive: Archive) -> None:
    items = archive.ok("/studies")
    assert _names(items) == ["DOE^JANE", "DOE^JOHN", "SMITH^ANN"]
    for item in items:
        assert {_tag(k) for k in STUDY_RETURN_KEYS} <= set(item)
    a = next(i for i in items if i[_tag("PatientID")]["Value"] == ["P1"])
    assert a[_tag("NumberOfStudyRelatedSeries")]["Value"] == [2]
    assert a[_tag("NumberOfStudyRelatedInstances")]["Value"] == [3]
    assert a[_tag("ModalitiesInStudy")]["Value"] == ["CT", "MR"]
    assert a[_tag("InstanceAvailability")]["Value"] == ["ONLINE"]
    assert a[_tag("RetrieveURL")]["Value"][0].endswith(f"/dicom-web/studies/{archive.a1.StudyInstanceUID}")
    assert a[_tag("AccessionNumber")]["Value"] == ["ACC1"]


MATCHING = [
    ({"PatientName": "DOE*"}, ["DOE^JANE", "DOE^JOHN"]),
    ({"PatientName": "doe^j?ne"}, ["DOE^JANE"]),  # person names match case-insensitively
    ({"00100010": "SMITH^ANN"}, ["SMITH^ANN"]),  # attribute given by tag
    ({"PatientID": "P2"}, ["DOE^JANE"]),
    ({"StudyDate": "20200101-20211231"}, ["DOE^JANE", "DOE^JOHN"]),
    ({"StudyDate": "-20200101"}, ["DOE^JOHN"]),
    ({"StudyDate": "20220101-"}, ["SMITH^ANN"]),
    ({"StudyTime": "090000-120000"}, ["DOE^JANE", "DOE^JOHN"]),
    ({"StudyDescription": "*MR*"}, ["DOE^JANE"]),
    ({"ModalitiesInStudy": "MR"}, ["DOE^JANE", "DOE^JOHN"]),
    ({"PatientName": "DOE*", "StudyDate": "20210101-"}, ["DOE^JANE"]),
]


def test_study_matching(archive: Archive) -> None:
    for params, expected in MATCHING:
        assert _names(archive.ok("/studies", **params)) == expected, params


def test_uid_list_matching(archive: Archive) -> None:
    uids = f"{archive.b.StudyInstanceUID},{archive.c.StudyInstanceUID}"
    assert _names(archive.ok("/studies", StudyInstanceUID=uids)) == ["DOE^JANE", "SMITH^ANN"]
    r = archive.web.client.get("/dicom-web/studies", params=[
        ("0020000D", str(archive.a1.StudyInstanceUID)), ("0020000D", str(archive.c.StudyInstanceUID))])
    assert _names(r.json()) == ["DOE^JOHN", "SMITH^ANN"]


def test_no_match_is_204_without_a_body(archive: Archive) -> None:
    r = archive.get("/studies", PatientName="NOBODY*")
    assert r.status_code == 204
    assert r.content == b""


def test_limit_and_offset_page_through_the_results(archive: Archive) -> None:
    everything = [i[_tag("StudyInstanceUID")]["Value"][0] for i in archive.ok("/studies")]
    pages = []
    for offset in (0, 2):
        page = archive.ok("/studies", limit="2", offset=str(offset))
        pages += [i[_tag("StudyInstanceUID")]["Value"][0] for i in page]
    assert pages == everything
    assert len(archive.ok("/studies", limit="2")) == 2
    assert archive.get("/studies", offset="3").status_code == 204


def test_results_beyond_the_server_maximum_are_announced(archive: Archive) -> None:
    archive.web.radai.settings.dicomweb.qido_max_results = 2
    r = archive.get("/studies")
    assert r.status_code == 200
    assert len(r.json()) == 2
    assert "299" in r.headers["warning"]
    assert "There are 1 additional results that can be requested" in r.headers["warning"]


def test_includefield(archive: Archive) -> None:
    plain = archive.ok("/studies", PatientID="P2")[0]
    assert _tag("StudyDescription") not in plain
    for params in ({"includefield": "StudyDescription"}, {"includefield": "00081030"},
                   {"includefield": "PatientAge,00081030"}):
        item = archive.ok("/studies", PatientID="P2", **params)[0]
        assert item[_tag("StudyDescription")]["Value"] == ["BRAIN MR"]
    r = archive.web.client.get("/dicom-web/studies", params=[
        ("PatientID", "P2"), ("includefield", "StudyDescription"), ("includefield", "PatientAge")])
    assert {_tag("StudyDescription"), _tag("PatientAge")} <= set(r.json()[0])
    everything = archive.ok("/studies", PatientID="P2", includefield="all")[0]
    assert {_tag("StudyDescription"), _tag("PatientAge"), _tag("IssuerOfPatientID")} <= set(everything)
    # Series-level attributes are not returned by a study search (PS3.18 §10.6.3.3.1).
    assert _tag("Modality") not in archive.ok("/studies", includefield="Modality")[0]
    assert _tag("Modality") not in everything


def test_fuzzymatching_is_not_supported_and_says_so(archive: Archive) -> None:
    r = archive.get("/studies", PatientName="DOE*", fuzzymatching="true")
    assert r.status_code == 200
    assert len(r.json()) == 2
    assert "fuzzymatching parameter is not supported" in r.headers["warning"]
    assert r.headers["warning"].startswith("299 ")
    assert "warning" not in archive.get("/studies", fuzzymatching="false").headers


def test_series_of_a_study(archive: Archive) -> None:
    items = archive.ok(f"/studies/{archive.a1.StudyInstanceUID}/series")
    assert sorted(_values(items, "Modality")) == ["CT", "MR"]
    for item in items:
        assert {_tag(k) for k in SERIES_RETURN_KEYS} <= set(item)
    ct = next(i for i in items if i[_tag("Modality")]["Value"] == ["CT"])
    assert ct[_tag("NumberOfSeriesRelatedInstances")]["Value"] == [2]
    assert ct[_tag("SeriesNumber")]["Value"] == [1]
    assert ct[_tag("RetrieveURL")]["Value"][0].endswith(
        f"/studies/{archive.a1.StudyInstanceUID}/series/{archive.a1.SeriesInstanceUID}")
    assert _values(archive.ok(f"/studies/{archive.a1.StudyInstanceUID}/series", Modality="MR"),
                   "Modality") == ["MR"]


def test_all_series_carry_their_study_attributes(archive: Archive) -> None:
    items = archive.ok("/series", Modality="MR", PatientName="DOE^JANE")
    assert len(items) == 1
    assert {_tag(k) for k in STUDY_RETURN_KEYS if k != "RetrieveURL"} <= set(items[0])
    assert items[0][_tag("StudyInstanceUID")]["Value"] == [archive.b.StudyInstanceUID]


def test_instances(archive: Archive) -> None:
    a1 = archive.a1
    items = archive.ok(f"/studies/{a1.StudyInstanceUID}/series/{a1.SeriesInstanceUID}/instances")
    assert sorted(_values(items, "SOPInstanceUID")) == sorted([a1.SOPInstanceUID, archive.a2.SOPInstanceUID])
    for item in items:
        assert {_tag(k) for k in INSTANCE_RETURN_KEYS} <= set(item)
        assert item[_tag("Rows")]["Value"] == [128]
        assert item[_tag("SOPClassUID")]["Value"] == [a1.SOPClassUID]
    in_study = archive.ok(f"/studies/{a1.StudyInstanceUID}/instances")
    assert len(in_study) == 3
    assert {_tag(k) for k in SERIES_RETURN_KEYS if k != "RetrieveURL"} <= set(in_study[0])
    everywhere = archive.ok("/instances", SOPInstanceUID=str(archive.c.SOPInstanceUID))
    assert _names(everywhere) == ["SMITH^ANN"]
    assert archive.ok("/instances", InstanceNumber="2")[0][_tag("SOPInstanceUID")]["Value"] == [
        archive.a2.SOPInstanceUID]


def test_instance_includefield_not_in_the_index_is_read_from_the_file(archive: Archive) -> None:
    a1 = archive.a1
    path = f"/studies/{a1.StudyInstanceUID}/series/{a1.SeriesInstanceUID}/instances"
    items = archive.ok(path, includefield="SliceThickness,ImagePositionPatient",
                       SOPInstanceUID=str(archive.a2.SOPInstanceUID))
    assert items[0][_tag("SliceThickness")]["Value"] == [2.5]
    position = [float(v) for v in archive.a2.ImagePositionPatient]
    assert items[0][_tag("ImagePositionPatient")]["Value"] == position
    # At the series level such attributes are left out.
    series = archive.ok(f"/studies/{a1.StudyInstanceUID}/series", includefield="SliceThickness")
    assert all(_tag("SliceThickness") not in item for item in series)


INVALID = [
    ("/studies", {"Foo": "1"}, "Foo"),
    ("/studies", {"StudyDate": "2020"}, "StudyDate"),
    ("/studies", {"StudyDate": "2020a-"}, "StudyDate"),
    ("/studies", {"limit": "many"}, "limit"),
    ("/studies", {"limit": "0"}, "limit"),
    ("/studies", {"offset": "-1"}, "offset"),
    ("/studies", {"fuzzymatching": "maybe"}, "fuzzymatching"),
    ("/studies", {"Modality": "CT"}, "Modality"),
    ("/studies", {"SliceThickness": "1"}, "SliceThickness"),
    ("/studies", {"00081111.00081150": "1.2"}, "sequences"),
    ("/studies", {"includefield": "NotAKeyword"}, "NotAKeyword"),
    ("/studies", {"includefield": "00091010"}, "private"),
    ("/series", {"SOPInstanceUID": "1.2"}, "SOPInstanceUID"),
    ("/instances", {"InstanceNumber": "first"}, "InstanceNumber"),
    ("/studies/1.2.x/series", {}, "Study Instance UID"),
]


def test_invalid_query_is_400_naming_what_is_wrong(archive: Archive) -> None:
    for path, params, names in INVALID:
        r = archive.get(path, **params)
        assert r.status_code == 400, params
        assert names in r.json()["detail"], params


def test_repeated_non_uid_key_is_400(archive: Archive) -> None:
    r = archive.web.client.get("/dicom-web/studies", params=[("PatientID", "P1"), ("PatientID", "P2")])
    assert r.status_code == 400
    assert "PatientID" in r.json()["detail"]
    assert "P1" not in r.json()["detail"]  # the value is not echoed


def test_only_json_is_offered(archive: Archive) -> None:
    r = archive.web.client.get("/dicom-web/studies",
                               headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    assert r.status_code == 406
    assert archive.web.client.get("/dicom-web/studies", headers={"Accept": "application/json"}
                                  ).status_code == 200
