"""A radiologist's day in Debian's Chromium: sign in, worklist, OHIF, verdicts, signing, audit.

The server (tests/e2e/conftest.py) holds real chest radiographs read by the real
pneumonia model. Screenshots go to each test's temporary folder, or to the folder named
by ``TEST_SCREENSHOTS_DIR`` (docs/workspace.md says how docs/screenshots/ is made).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

from tests.e2e.conftest import Workspace, sign_in

pytestmark = pytest.mark.e2e

#: The viewer's image canvas (cornerstone3D's viewport element, inside OHIF's iframe).
VIEWPORT_CANVAS = "canvas.cornerstone-canvas"
#: Screenshots kept for the documentation stay small: at most this wide, in a palette.
SCREENSHOT_WIDTH = 1200


def save_screenshot(png: bytes, path: Path) -> None:
    """Store a screenshot downscaled to :data:`SCREENSHOT_WIDTH` as a 256-colour PNG."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > SCREENSHOT_WIDTH:
        height = round(image.height * SCREENSHOT_WIDTH / image.width)
        image = image.resize((SCREENSHOT_WIDTH, height), Image.Resampling.LANCZOS)
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def central_gray(canvas: Locator) -> np.ndarray:
    """The middle half (in each direction) of a screenshot of the canvas, as gray levels.

    The viewer's overlays (dates, window/level, orientation markers) sit in the corners,
    so what is left is the image alone.
    """
    gray = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"), dtype=np.float64)
    h, w = gray.shape
    return gray[h // 4: 3 * h // 4, w // 4: 3 * w // 4]


def wait_for_pixels(canvas: Locator, timeout: float = 60) -> np.ndarray:
    """Wait until the canvas shows an image: many gray levels with a real spread."""
    deadline = time.monotonic() + timeout
    while True:
        middle = central_gray(canvas)
        if middle.std() > 20 and len(np.unique(middle)) > 64:
            return middle
        if time.monotonic() > deadline:
            raise AssertionError(f"the viewer shows no image: standard deviation {middle.std():.1f}, "
                                 f"{len(np.unique(middle))} gray levels")
        canvas.page.wait_for_timeout(250)


def rendering_path(messages: list[str]) -> str:
    """What cornerstone3D said about its rendering (WebGL or CPU), from the console."""
    said = [m for m in messages if m.startswith("CornerstoneRender:")]
    return "; ".join(said) or "(cornerstone3D said nothing about its rendering)"


def worklist_rows(page: Page) -> list[tuple[str, str]]:
    """(Study Instance UID, AI result) of the rows the worklist shows, top first."""
    rows = page.locator("#rows tr[data-study-uid]")
    return [(str(r.get_attribute("data-study-uid")), str(r.get_attribute("data-ai-result")))
            for r in rows.all()]


def audit_rows(workspace: Workspace, actor: str) -> list[dict[str, object]]:
    """The audit log rows of ``actor``, read through the API by the auditor."""
    with workspace.api("auditor") as api:
        r = api.get("/api/v1/audit", params={"actor": actor, "limit": 1000})
    assert r.status_code == 200, r.text
    rows: list[dict[str, object]] = r.json()["items"]
    return rows


def test_radiologist_reads_and_signs_a_positive_study(workspace: Workspace, page: Page,
                                                      screenshots: Path) -> None:
    console: list[str] = []

    def heard(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", heard)

    # The model read every radiograph as expected: two pneumonias, three without.
    by_accession = {i["accession_number"]: i for i in workspace.items.values()}
    for accession, (_patient, positive) in workspace.radiographs.items():
        assert (by_accession[accession]["ai_result"] == "positive") == positive, accession
    positives = set(workspace.uids(positive=True))
    assert len(positives) == 2

    sign_in(page, "radiologist", next_url="/worklist")
    expect(page).to_have_url(re.compile(r"/worklist$"))
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    rows = worklist_rows(page)
    # Pneumonia-positive studies first, then the rest (negative and not routed).
    shown_positive = [uid for uid, result in rows if result == "positive"]
    assert [uid for uid, _ in rows[:len(shown_positive)]] == shown_positive
    assert set(shown_positive) == positives
    assert {result for _uid, result in rows[len(shown_positive):]} == {"negative", "not_routed"}
    first = page.locator("#rows tr[data-study-uid]").first
    expect(first.locator(".badge.positive")).to_contain_text("pneumonia")
    expect(first.locator(".why")).to_contain_text("urgent positive AI finding (pneumonia)")
    save_screenshot(page.screenshot(), screenshots / "worklist.png")

    # Open the patient without a prior (the other positive study is another test's) in a
    # second tab; the worklist stays open and refreshes itself.
    uid = next(u for u, _ in rows if u in positives and workspace.items[u]["patient_id"] == "E2E-P2")
    row = page.locator(f'#rows tr[data-study-uid="{uid}"]')
    href = row.get_by_role("link", name="Open").get_attribute("href")
    assert href == f"/studies/{uid}"
    study = page.context.new_page()
    study.on("console", heard)
    errors: list[str] = []
    study.on("pageerror", lambda error: errors.append(str(error)))
    study.goto(href)
    expect(study.locator("#reading-status")).to_have_text("in review")
    expect(row).to_contain_text("in review")

    # OHIF shows the radiograph's pixels, and lists the AI's heatmap and SR series.
    viewer = study.frame_locator("#viewer")
    middle = wait_for_pixels(viewer.locator(VIEWPORT_CANVAS).first)
    labels = viewer.locator('[data-cy="series-description-label"]')
    expect(labels.filter(has_text="AI heatmap")).to_have_count(1)
    expect(labels.filter(has_text="AI report")).to_have_count(1)
    print(f"viewer: {rendering_path(console)}; image std {middle.std():.1f}")

    # The findings panel: the pneumonia finding with its probability, operating point,
    # model and licence, and its heatmap.
    finding = study.locator("#findings .finding[data-finding-id]")
    expect(finding).to_have_count(1)
    expect(finding).to_contain_text("Pneumonia")
    expect(finding).to_contain_text(re.compile(r"Probability \d+\.\d% · operating point 50\.0%"))
    expect(finding).to_contain_text("licence unknown — research use only")
    heatmap = finding.locator("img")
    expect(heatmap).to_have_js_property("complete", True)
    assert heatmap.evaluate("img => img.naturalWidth") > 0

    # Verdicts: agree, then a change of mind (the latest one counts); a missed finding.
    button = study.locator("#findings .finding button[name=verdict]")
    finding.get_by_role("button", name="agree", exact=True).click()
    expect(button.and_(study.locator("[value=agree]"))).to_have_attribute("aria-pressed", "true")
    study.locator("#findings .finding").get_by_role("button", name="disagree").click()
    expect(button.and_(study.locator("[value=disagree]"))).to_have_attribute("aria-pressed", "true")
    expect(button.and_(study.locator("[value=agree]"))).to_have_attribute("aria-pressed", "false")
    study.get_by_label("or in words").fill("Rib fracture")
    study.locator("#missed").get_by_role("button", name="Add").click()
    expect(study.locator("#missed li[data-missed-id]")).to_have_text(re.compile(r"^Rib fracture"))
    save_screenshot(study.screenshot(), screenshots / "study.png")

    # Sign the report: it becomes read-only and the study leaves the worklist.
    text = "Patchy opacity in the right lower zone is not convincing for pneumonia.\nNo effusion."
    study.get_by_label("Findings and impression").fill(text)
    study.get_by_role("button", name="Sign report").click()
    signed = study.locator("#report article.signed")
    expect(signed).to_be_visible()
    expect(signed.locator(".signed-report")).to_have_text(text)
    expect(signed).to_contain_text("signed by radiologist")
    expect(signed).to_contain_text("Pneumonia — disagree")
    expect(study.locator("#reading-status")).to_have_text("signed")
    expect(study.locator("#report textarea")).to_have_count(0)
    expect(study.locator("#findings button[value=agree]")).to_have_count(0)
    # The viewer now lists the signed report's SR too.
    viewer = study.frame_locator("#viewer")
    wait_for_pixels(viewer.locator(VIEWPORT_CANVAS).first)
    expect(viewer.locator('[data-cy="series-description-label"]').filter(
        has_text="Radiology report")).to_have_count(1)
    save_screenshot(study.screenshot(), screenshots / "signed.png")
    assert errors == []

    # The open worklist drops the signed study by itself; a fresh one does not list it.
    expect(row).to_have_count(0)
    study.get_by_role("link", name="Back to the worklist").click()
    expect(study.locator("#rows tr[data-study-uid]").first).to_be_visible()
    remaining = worklist_rows(study)
    assert uid not in {u for u, _ in remaining}
    assert remaining[0][1] == "positive"

    # What was signed is in the archive: the report's SR is a series of the study.
    with workspace.api("radiologist") as api:
        reading = api.get(f"/api/v1/studies/{uid}/reading").json()
        assert reading["status"] == "signed" and not reading["editable"]
        (report,) = reading["reports"]
        assert report["text"] == text
        assert sorted((v["verdict"], v["code"]["meaning"]) for v in report["verdicts"]) == [
            ("disagree", "Pneumonia"), ("missed", "Rib fracture")]
        series = api.get(f"/dicom-web/studies/{uid}/series", params={"Modality": "SR"}).json()
    sr_series = {s["0020000E"]["Value"][0] for s in series}
    assert report["series_instance_uid"] in sr_series

    # Every page the radiologist saw was written to the audit log with its studies.
    rows_seen = {(r["action"], r["study_uid"]) for r in audit_rows(workspace, "radiologist")}
    for shown_uid, _ in rows:
        assert ("worklist.page", shown_uid) in rows_seen
    for action in ("worklist.study_page", "worklist.verdict", "worklist.report_signed"):
        assert (action, uid) in rows_seen, action
    assert any(str(a).startswith("dicomweb.") and s == uid for a, s in rows_seen), \
        "the viewer's image requests are audited"


def test_annotator_reads_without_reviewing_and_is_audited(workspace: Workspace, page: Page) -> None:
    uid = next(u for u in workspace.uids(positive=True) if workspace.items[u]["patient_id"] == "E2E-P1")
    prior = next(u for u, i in workspace.items.items()
                 if i["patient_id"] == "E2E-P1" and u != uid)
    sign_in(page, "annotator", next_url=f"/studies/{uid}")
    expect(page).to_have_url(re.compile(rf"/studies/{re.escape(uid)}$"))
    # Read only: no verdict buttons, no report form; the study stays unread.
    expect(page.locator("#findings .finding")).to_contain_text("Pneumonia")
    expect(page.locator("#findings button[value=agree]")).to_have_count(0)
    expect(page.locator("#report")).to_contain_text("Your roles do not include reviewing")
    expect(page.locator("#reading-status")).to_have_text("unread")
    # The prior study of the same patient, openable side by side.
    expect(page.locator(f'#priors tr[data-prior-uid="{prior}"]')).to_be_visible()
    page.locator(f'#priors tr[data-prior-uid="{prior}"]').get_by_role("link", name="Side by side").click()
    expect(page).to_have_url(re.compile(rf"compare={re.escape(prior)}"))
    expect(page.locator("#viewer")).to_have_attribute("src", re.compile(
        rf"StudyInstanceUIDs={re.escape(uid)}%2C{re.escape(prior)}&"))
    # OHIF lays the two studies out next to each other (each with its AI heatmap below).
    canvases = page.frame_locator("#viewer").locator(VIEWPORT_CANVAS)
    expect(canvases.nth(1)).to_be_visible()
    today, before = wait_for_pixels(canvases.nth(0)), wait_for_pixels(canvases.nth(1))
    assert not np.array_equal(today, before), "the prior is another image"
    page.goto("/worklist")
    expect(page.locator("#rows tr[data-study-uid]").first).to_be_visible()
    shown = [u for u, _ in worklist_rows(page)]
    # Filters and search replace the rows in place.
    rows = page.locator("#rows tr[data-study-uid]")
    page.get_by_label("AI result").select_option("negative")
    expect(rows.and_(page.locator(':not([data-ai-result="negative"])'))).to_have_count(0)
    expect(rows).to_have_count(sum(i["ai_result"] == "negative" for i in workspace.items.values()))
    page.get_by_label("AI result").select_option("")
    page.get_by_label("Search (name, patient ID, accession)").fill("lind")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Lind Maja")

    seen = {(r["action"], r["study_uid"]) for r in audit_rows(workspace, "annotator")}
    # Both study page views name the study and its prior; the worklist names every row.
    assert ("worklist.study_page", uid) in seen and ("worklist.study_page", prior) in seen
    assert all(("worklist.page", u) in seen for u in shown)
    # The viewer's DICOMweb requests for both studies are audited too.
    for study in (uid, prior):
        assert any(str(a).startswith("dicomweb.") and s == study for a, s in seen), study


def test_anonymous_and_wrong_roles_are_refused(workspace: Workspace, page: Page) -> None:
    uid = next(iter(workspace.items))
    # A browser without a session is sent to the login page.
    for path in ("/worklist", f"/studies/{uid}", f"/viewer/viewer?StudyInstanceUIDs={uid}"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/login\?next="))
        expect(page.get_by_role("heading", name="Sign in to radai")).to_be_visible()
    # Programs without credentials get 401.
    for path in ("/api/v1/worklist", f"/api/v1/studies/{uid}/reading", "/viewer/app-config.js",
                 f"/dicom-web/studies/{uid}/series"):
        assert httpx.get(workspace.base_url + path, timeout=30).status_code == 401, path

    # Vendors and auditors sign in but may not see the workspace or its images.
    for user in ("vendor", "auditor"):
        page.context.clear_cookies()
        sign_in(page, user, next_url="/")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.get_by_role("link", name="Worklist")).to_have_count(0)
        for path in ("/worklist", f"/studies/{uid}", f"/viewer/viewer?StudyInstanceUIDs={uid}"):
            response = page.goto(path)
            assert response is not None and response.status == 403, (user, path)
        answer = page.request.get(f"/dicom-web/studies/{uid}/series")
        assert answer.status == 403, user
        with workspace.api(user) as api:
            assert api.get("/api/v1/worklist").status_code == 403
            r = api.put(f"/api/v1/studies/{uid}/findings/1/verdict", json={"verdict": "agree"})
            assert r.status_code == 403
    # The refusals of patient-data routes are in the audit log.
    denied = {(r["action"], r["study_uid"]) for r in audit_rows(workspace, "vendor")
              if r["outcome"] == "denied"}
    assert ("GET /studies/{study_uid}", uid) in denied
    assert ("GET /dicom-web/studies/{study}/series", uid) in denied
