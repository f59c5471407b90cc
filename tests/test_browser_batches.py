"""Chromium against a real Gunicorn: "Right?" feedback and folder uploads.

The server sends at most 8 files per request and allows few /predict
requests per second, so a folder of 60 photos takes several requests and meets
429s with Retry-After on the way; every photo must still end up in exactly one
history row. Screenshots (desktop and phone) go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections import Counter

import pytest

from devtools.server import flask_cli
from tests.helpers import make_image_bytes
from tests.test_browser import CHROMIUM
from tests.test_browser import LABELS
from tests.test_browser import PHONE
from tests.test_browser import Watched
from tests.test_browser import browser  # noqa: F401 (a fixture)
from tests.test_browser import file_payload
from tests.test_browser import jpeg
from tests.test_browser import new_page  # noqa: F401 (a fixture)
from tests.test_browser import page  # noqa: F401 (a fixture)
from tests.test_browser import register
from tests.test_browser import upload_via_picker

MAX_FILES = 8
# Per worker (memory:// counters): low enough that 60 photos meet 429s.
RATE_LIMIT = "2 per 3 seconds"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium"),
]


@pytest.fixture(scope="module")
def server(new_server):
    server = new_server(
        "batches",
        MAX_FILES_PER_REQUEST=str(MAX_FILES),
        PREDICT_RATE_LIMIT=RATE_LIMIT,
        **({"IMAGENET_LABELS": str(LABELS)} if LABELS.exists() else {}),
    )
    yield server
    server.stop()


def own_predictions(watched: Watched) -> list[dict]:
    """Every prediction of the signed-in user, through the JSON API."""
    items = []
    for number in range(1, 20):
        response = watched.page.request.get(
            watched.base_url + f"/api/predictions?per_page=100&page={number}"
        )
        assert response.status == 200
        body = response.json()
        items += body["items"]
        if number >= body["pages"]:
            return items
    raise AssertionError("too many pages")


def load_lazy_images(watched: Watched) -> None:
    """Load the cards' lazy thumbnails, so that the audit can check them all."""
    watched.page.evaluate(
        "() => document.querySelectorAll('img[loading=lazy]')"
        ".forEach((img) => { img.loading = 'eager'; })"
    )
    watched.page.wait_for_function(
        "() => Array.from(document.images).every((i) => i.complete)"
    )


def photo_folder(tmp_path, count: int):
    folder = tmp_path / "Garden photos"
    folder.mkdir()
    for i in range(count):
        color = (i * 4 % 256, 255 - i * 4 % 256, (i * 37) % 256)
        (folder / f"photo-{i:02d}.jpg").write_bytes(
            make_image_bytes("JPEG", size=(64, 48), color=color)
        )
    (folder / "notes.txt").write_text("not a photo")
    return folder


# --------------------------------------------------------------------------
# Feedback


def test_right_yes_and_correction_without_reload(page):  # noqa: F811
    register(page)
    upload_via_picker(page, [file_payload("cat.jpg", jpeg(), "image/jpeg")])
    p = page.page
    p.evaluate("window.__samePage = true")
    status = p.locator(".feedback-status")
    assert status.inner_text() == "Not reviewed yet."
    # Keyboard only: a focused Yes is pressed with Space.
    yes = p.get_by_role("button", name=re.compile("^Yes"))
    yes.focus()
    p.keyboard.press("Space")
    p.wait_for_function(
        "() => document.querySelector('.feedback-status').textContent"
        ".startsWith('You confirmed')"
    )
    # Corrected from the searchable list (datalist) or free text, with Enter.
    field = p.get_by_label("No, it is")
    assert field.get_attribute("list") == "imagenet-labels"
    assert p.locator("#imagenet-labels option").count() > 0
    field.fill("a garden gnome")
    field.press("Enter")
    p.wait_for_function(
        "() => document.querySelector('.feedback-status').textContent"
        " === 'You corrected it to: a garden gnome.'"
    )
    assert p.evaluate("window.__samePage") is True  # no reload
    page.audit("30-feedback-result.png")
    p.get_by_role("button", name=re.compile("^Clear")).click()
    p.wait_for_function(
        "() => document.querySelector('.feedback-status').textContent"
        " === 'Not reviewed yet.'"
    )
    (item,) = own_predictions(page)
    assert item["feedback"] is None

    page.goto("/history?review=unreviewed")
    assert p.locator(".history-item").count() == 1
    page.audit("31-history-review-filter.png")


def test_dataset_zip_and_the_admin_agreement_figures(page, server):  # noqa: F811
    username = register(page)
    upload_via_picker(
        page,
        [
            file_payload("one.jpg", jpeg(), "image/jpeg"),
            file_payload("two.png", make_image_bytes("PNG"), "image/png"),
        ],
    )
    p = page.page
    p.get_by_role("button", name=re.compile("^Yes")).first.click()
    field = p.get_by_label("No, it is").nth(1)
    field.fill("red square")
    field.press("Enter")
    p.wait_for_function(
        "() => Array.from(document.querySelectorAll('.feedback-status'))"
        ".every((s) => s.textContent.startsWith('You '))"
    )
    page.audit("38-results-feedback.png")

    page.goto("/history?review=corrected")
    assert p.locator(".history-item").count() == 1
    with p.expect_download() as download:
        p.get_by_role("link", name="Dataset (ZIP)").click()
    archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert [(r["filename"], r["corrected_label"]) for r in rows] == [
        ("two.png", "red square")
    ]
    assert archive.read(rows[0]["file"]).startswith(b"\xff\xd8")

    flask_cli(server.env, "set-admin", username)
    page.goto("/admin")
    agreement = p.inner_text("#feedback-agreement")
    assert "1 confirmed, 1 corrected" in agreement
    assert "red square" in p.inner_text("#feedback")
    page.audit("39-admin-agreement.png")


def test_right_works_without_javascript(new_page):  # noqa: F811
    with_js = new_page()
    register(with_js)
    upload_via_picker(with_js, [file_payload("dog.jpg", jpeg(), "image/jpeg")])
    result_url = with_js.page.url
    cookies = with_js.page.context.cookies()
    plain = new_page(java_script_enabled=False)
    plain.page.context.add_cookies(cookies)
    plain.page.goto(result_url)
    field = plain.page.get_by_label("No, it is")
    field.fill("wolf")
    with plain.page.expect_navigation():
        field.press("Enter")
    assert "You corrected it to: wolf." in plain.page.inner_text(".feedback-status")
    assert plain.page.url == result_url
    (item,) = own_predictions(plain)
    assert item["feedback"]["label"] == "wolf"


def test_feedback_on_a_phone(new_page):  # noqa: F811
    phone = new_page(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    register(phone)
    assert phone.page.get_by_text("Take photo").is_visible()
    capture = phone.page.locator("#camera-input")
    assert capture.get_attribute("capture") == "environment"
    phone.audit("32-phone-upload-take-photo.png")
    upload_via_picker(phone, [file_payload("p.jpg", jpeg(), "image/jpeg")])
    phone.page.get_by_role("button", name=re.compile("^Yes")).tap()
    phone.page.wait_for_function(
        "() => document.querySelector('.feedback-status').textContent"
        ".startsWith('You confirmed')"
    )
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    phone.audit("33-phone-feedback.png")


# --------------------------------------------------------------------------
# A whole folder


def test_a_folder_of_60_photos_ends_in_exactly_one_row_each(page, tmp_path):  # noqa: F811
    register(page)
    folder = photo_folder(tmp_path, 60)
    statuses: list[int] = []
    page.page.on(
        "response",
        lambda r: statuses.append(r.status) if r.url.endswith("/predict") else None,
    )
    # A refused request is expected console noise: it is retried.
    page.expected = [re.compile("status of 429")]
    page.page.locator("#folder-input").set_input_files(folder)
    page.page.locator("#previews .preview-more").wait_for()
    assert "60 in all" in page.page.inner_text("#previews .preview-more")
    assert "notes.txt: not a supported image" in page.page.inner_text("#client-errors")
    page.page.get_by_role("button", name="Classify").click()
    page.page.locator("#batch-controls").wait_for()
    page.page.get_by_role("button", name="Pause").click()
    assert (
        page.page.get_by_role("button", name="Resume").get_attribute("aria-pressed")
        == "true"
    )
    page.page.wait_for_function(
        "() => document.getElementById('upload-progress-text')"
        ".textContent.includes('paused')"
    )
    sent = len(statuses)
    page.page.wait_for_timeout(1500)
    assert len(statuses) <= sent + 1  # at most the request already under way
    page.audit("34-folder-upload-paused.png", full_page=False)
    page.page.get_by_role("button", name="Resume").click()

    summary = page.page.locator("#upload-summary")
    summary.wait_for(timeout=240_000)
    text = page.page.inner_text("#upload-summary-text")
    assert text.startswith("60 photos of 61 classified, 1 skipped"), text
    assert "notes.txt" in page.page.inner_text("#upload-summary-skipped")
    assert 429 in statuses, statuses  # the rate limit was met...
    assert "busy server, sent again" in text
    page.audit("35-folder-upload-summary.png")

    items = own_predictions(page)
    names = Counter(item["filename"] for item in items)
    assert names == Counter(f"photo-{i:02d}.jpg" for i in range(60))  # once each
    assert len({item["batch_id"] for item in items}) == 1

    page.page.get_by_role("link", name=re.compile("Open the batch")).click()
    page.page.wait_for_url(re.compile(r"/batches/\d+$"))
    assert page.page.inner_text("h1") == "Garden photos"
    assert page.page.locator(".cards .prediction-card").count() == 60
    load_lazy_images(page)
    page.audit("36-batch-page.png")
    page.goto("/history")
    assert page.page.get_by_role("link", name="Garden photos").is_visible()
    page.expected = []


def test_cancel_stops_the_upload_and_nothing_is_stored_twice(page, tmp_path):  # noqa: F811
    register(page)
    folder = photo_folder(tmp_path, 40)
    page.expected = [re.compile("status of 429"), re.compile("ERR_ABORTED|aborted")]
    # Many files through the ordinary picker (not a folder), with a name.
    page.page.locator("#image-input").set_input_files(sorted(folder.iterdir()))
    page.page.locator("#previews .preview-more").wait_for()
    page.page.get_by_label("Batch name").fill("Picked by hand")
    page.page.get_by_role("button", name="Classify").click()
    page.page.wait_for_function(
        "() => /^[1-9]\\d* of 41/.test("
        "document.getElementById('upload-progress-text').textContent)"
    )
    page.page.get_by_role("button", name="Cancel").click()
    page.page.locator("#upload-summary").wait_for()
    assert page.page.text_content("#upload-summary-heading") == "Upload stopped"
    link = page.page.get_by_role("link", name=re.compile("Open the batch"))
    assert "Picked by hand" in link.inner_text()
    page.page.wait_for_timeout(1000)  # a request cut off may still be stored
    names = Counter(item["filename"] for item in own_predictions(page))
    assert 0 < sum(names.values()) < 40
    assert set(names.values()) == {1}
    page.expected = []


# A dropped folder as Chromium hands it over: FileSystemEntry objects whose
# reader answers in pieces. (A script cannot build real ones.)
DROP_FOLDER = """
({name, count}) => {
  const file = (i) => {
    const canvas = document.createElement('canvas');
    canvas.width = 8; canvas.height = 8;
    return new Promise((resolve) => canvas.toBlob((blob) => resolve(
      new File([blob], `dropped-${String(i).padStart(2, '0')}.png`, {type: 'image/png'})
    )));
  };
  const fileEntry = (i) => ({isFile: true, isDirectory: false,
    name: `dropped-${String(i).padStart(2, '0')}.png`,
    file: (ok) => { file(i).then(ok); }});
  const dirEntry = (dirName, children) => ({isFile: false, isDirectory: true,
    name: dirName, createReader: () => {
      let given = 0;
      return {readEntries: (ok) => {
        const part = children.slice(given, given + 5);  // in pieces, as Chromium
        given += part.length;
        setTimeout(() => ok(part));
      }};
    }});
  const files = Array.from({length: count}, (_, i) => fileEntry(i));
  const inner = dirEntry('inner', files.slice(count - 3));
  const root = dirEntry(name, [...files.slice(0, count - 3), inner]);
  const event = new Event('drop', {bubbles: true, cancelable: true});
  Object.defineProperty(event, 'dataTransfer', {value: {
    items: [{kind: 'file', webkitGetAsEntry: () => root}],
    files: [], types: ['Files'],
  }});
  document.getElementById('drop-zone').dispatchEvent(event);
}
"""


def test_a_dropped_folder_is_read_to_the_end_and_503_waits(page):  # noqa: F811
    register(page)
    seen: list[tuple[float, int]] = []
    refused = []

    def busy_once(route):
        # The first request meets a busy server that asks for 2 s.
        if not refused:
            refused.append(True)
            route.fulfill(
                status=503,
                headers={"Retry-After": "2", "Content-Type": "application/json"},
                body='{"error": {"code": "overloaded", "message": "busy"}}',
            )
        else:
            route.continue_()

    page.page.route("**/predict", busy_once)
    page.page.on(
        "request",
        lambda r: (
            seen.append((time.monotonic(), 0)) if r.url.endswith("/predict") else None
        ),
    )
    page.expected = [re.compile("status of 503")]
    page.page.evaluate(DROP_FOLDER, {"name": "Dropped", "count": 12})
    page.page.locator("#previews .preview").nth(11).wait_for()
    page.page.get_by_role("button", name="Classify").click()
    page.page.locator("#upload-summary").wait_for(timeout=120_000)
    text = page.page.inner_text("#upload-summary-text")
    assert text.startswith("12 photos of 12 classified"), text
    assert "1 wait for a busy server" in text
    assert seen[1][0] - seen[0][0] >= 1.9  # Retry-After: 2 was honoured
    names = Counter(item["filename"] for item in own_predictions(page))
    assert names == Counter(f"dropped-{i:02d}.png" for i in range(12))
    page.page.get_by_role("link", name=re.compile("Open the batch")).click()
    assert page.page.inner_text("h1") == "Dropped"
    page.expected = []


def test_batch_page_on_a_phone(new_page, tmp_path):  # noqa: F811
    phone = new_page(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    register(phone)
    phone.page.locator("#folder-input").set_input_files(photo_folder(tmp_path, 10))
    phone.page.get_by_role("button", name="Classify").tap()
    phone.page.locator("#upload-summary").wait_for(timeout=120_000)
    phone.page.get_by_role("link", name=re.compile("Open the batch")).tap()
    phone.page.wait_for_url(re.compile(r"/batches/\d+$"))
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    load_lazy_images(phone)
    phone.audit("37-phone-batch-page.png")
