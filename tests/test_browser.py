"""End to end in headless Chromium: the real Gunicorn server, the real model.

Every page visited is checked for console errors and Content-Security-Policy
violations, and the main pages for accessibility with axe-core (labels, alt
text, colour contrast, ARIA). Screenshots of the main pages are written to
``artifacts/screenshots/``.

Needs Debian's Chromium: ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from devtools.server import ROOT
from tests.helpers import PASSWORD
from tests.helpers import gradient_image
from tests.helpers import make_image_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
# Real ImageNet label names where the shared folder has them (else class numbers).
LABELS = ROOT.parent / "shared" / "imagenet_class_index.json"
PHONE = {"width": 390, "height": 844}
# Browser-test server limits, small so the error flows are cheap to provoke.
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 1_000_000
PAGE_SIZE = 3

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Chromium at /usr/bin/chromium "
        "(apt-get install -y chromium chromium-driver)",
    ),
]

# Recorded before any page script runs, on every document.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
DROP_FILES = """
({files, target}) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, {type: f.type}));
  }
  const zone = document.querySelector(target);
  for (const type of ['dragenter', 'dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                            cancelable: true}));
  }
}
"""
PASTE_FILES = """
({files}) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, {type: f.type}));
  }
  document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt,
                                                      bubbles: true,
                                                      cancelable: true}));
}
"""


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def server(new_server):
    server = new_server(
        "browser",
        MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
        MAX_IMAGE_PIXELS=str(MAX_IMAGE_PIXELS),
        HISTORY_PAGE_SIZE=str(PAGE_SIZE),
        **({"IMAGENET_LABELS": str(LABELS)} if LABELS.exists() else {}),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # launch() gives every run a fresh, temporary user-data directory.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Watched:
    """A page whose console errors and CSP violations are collected."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.problems: list[str] = []
        # Console lines the current step expects (e.g. a 404 page's load error).
        self.expected: list[re.Pattern] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.add_init_script(RECORD_CSP_VIOLATIONS)

    def _console(self, message) -> None:
        if message.type not in ("error", "warning"):
            return
        text = message.text
        if message.type == "warning" and "Content Security Policy" not in text:
            return
        if any(pattern.search(text) for pattern in self.expected):
            return
        self.problems.append(f"console {message.type}: {text}")

    def goto(self, path: str, status: int = 200):
        response = self.page.goto(self.base_url + path)
        assert response.status == status, f"{path}: {response.status}"
        self.check(response)
        return response

    def check(self, response=None) -> None:
        """No console error and no CSP violation so far; CSP is sent."""
        self.page.wait_for_load_state("load")
        violations = self.page.evaluate("window.__cspViolations || []")
        assert violations == [], f"CSP violations on {self.page.url}: {violations}"
        assert self.problems == [], f"on {self.page.url}: {self.problems}"
        if response is not None:
            policy = response.headers.get("content-security-policy", "")
            assert "default-src 'self'" in policy, policy

    def images_loaded(self) -> None:
        """Every image has loaded and has an alt attribute."""
        # A loaded machine may still be fetching a thumbnail after "load".
        self.page.wait_for_function(
            "Array.from(document.images).every((img) => img.complete)",
            timeout=15_000,
        )
        images = self.page.evaluate(
            """() => Array.from(document.images).map((img) => ({
                src: img.src, ok: img.complete && img.naturalWidth > 0,
                alt: img.getAttribute('alt')}))"""
        )
        for image in images:
            assert image["ok"], f"image did not load: {image['src']}"
            assert image["alt"] is not None, f"image without alt: {image['src']}"

    def audit(self, name: str | None = None, full_page: bool = True) -> None:
        """Console and CSP clean, accessibility clean (axe), then a screenshot."""
        self.check()
        self.images_loaded()
        assert_accessible(self.page)
        if name:
            self.page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def assert_accessible(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        options={
            "runOnly": {
                "type": "tag",
                "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
            },
            "resultTypes": ["violations"],
        },
    )
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} -> "
        + "; ".join(node["html"][:120] for node in v["nodes"][:3])
        for v in results.response["violations"]
    ]
    assert violations == [], f"accessibility problems on {page.url}:\n" + "\n".join(
        violations
    )


@pytest.fixture
def new_page(browser, server):
    """Open watched pages in fresh browser contexts (own cookies each)."""
    contexts = []

    def open_page(**context_options) -> Watched:
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return Watched(page, server.url)

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page) -> Watched:
    return new_page()


# --------------------------------------------------------------------------
# Helpers


_users = iter(range(1, 10_000))


def register(watched: Watched, username: str | None = None) -> str:
    username = username or f"user{next(_users)}"
    watched.goto("/register")
    page = watched.page
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(watched.base_url + "/")
    watched.check()
    return username


def sign_in(watched: Watched, username: str, password: str = PASSWORD) -> None:
    watched.goto("/login")
    watched.page.get_by_label("Username").fill(username)
    watched.page.get_by_label("Password").fill(password)
    watched.page.get_by_role("button", name="Sign in").click()


def sign_out(watched: Watched) -> None:
    watched.page.get_by_role("button", name=re.compile("^Sign out")).click()
    watched.page.wait_for_url(watched.base_url + "/login")
    watched.check()


def jpeg(size=(320, 240), **kwargs) -> bytes:
    buffer = io.BytesIO()
    gradient_image(size).save(buffer, "JPEG", quality=85, **kwargs)
    return buffer.getvalue()


def noisy_jpeg(size=(500, 400)) -> bytes:
    """A JPEG that barely compresses (~180 KB): slow enough to watch it upload."""
    noise = Image.frombytes(
        "RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3)
    )
    buffer = io.BytesIO()
    noise.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def file_payload(name: str, data: bytes, mime: str) -> dict:
    return {"name": name, "data": base64.b64encode(data).decode(), "type": mime}


def drop(watched: Watched, *files: dict) -> None:
    watched.page.evaluate(DROP_FILES, {"files": list(files), "target": "#drop-zone"})


def wait_previews(watched: Watched, count: int) -> None:
    """``count`` previews, each drawn (a canvas) or marked as not previewable."""
    previews = watched.page.locator("#previews .preview")
    previews.nth(count - 1).wait_for() if count else None
    assert previews.count() == count
    watched.page.wait_for_function(
        "n => document.querySelectorAll('#previews canvas.preview-image').length == n",
        arg=count,
    )


def upload_via_picker(watched: Watched, files: list[dict]) -> None:
    """Choose files with the file input and submit; wait for the result page."""
    watched.page.locator("#image-input").set_input_files(
        [
            {
                "name": f["name"],
                "mimeType": f["type"],
                "buffer": base64.b64decode(f["data"]),
            }
            for f in files
        ]
    )
    wait_previews(watched, len(files))
    with watched.page.expect_navigation(url=re.compile(r"/(predictions|results)")):
        watched.page.get_by_role("button", name="Classify").click()
    watched.check()


def wait_error_mentioning(watched: Watched, text: str) -> None:
    watched.page.wait_for_function(
        "t => document.getElementById('client-errors').textContent.includes(t)",
        arg=text,
    )


def exif_rotated_jpeg() -> bytes:
    """A 320x240 landscape JPEG whose EXIF says: rotate 90° to view (portrait)."""
    return make_image_bytes("JPEG", size=(320, 240), exif_orientation=6)


def set_threshold(watched: Watched, percent: int) -> None:
    watched.page.get_by_label("Not sure below (%)").fill(str(percent))
    watched.page.get_by_role("button", name="Apply").click()
    watched.page.wait_for_load_state("load")
    watched.check()


# --------------------------------------------------------------------------
# Accounts


def test_register_sign_out_and_sign_in(page):
    response = page.goto("/", status=200)
    assert page.page.url.endswith("/login")
    assert response.request.redirected_from is not None
    page.audit("01-login.png")

    page.goto("/register")
    page.audit("02-register.png")
    username = register(page)
    assert page.page.get_by_text("Welcome! Your account is ready.").is_visible()
    # The random-weights banner is on every page.
    assert page.page.locator("#random-weights-banner").is_visible()
    page.audit("03-upload.png")

    sign_out(page)
    assert page.page.get_by_text("You are signed out.").is_visible()
    # Signed out means signed out: the history asks for a sign-in again.
    page.goto("/history")
    assert "/login" in page.page.url

    page.expected = [re.compile("status of 401")]
    sign_in(page, username, "wrong password")
    page.page.wait_for_load_state("load")
    assert page.page.get_by_text("Unknown username or wrong password.").is_visible()
    page.expected = []
    sign_in(page, username)
    page.page.wait_for_url(page.base_url + "/")
    page.check()


# --------------------------------------------------------------------------
# Upload


def test_drag_and_drop_several_photos_shows_previews_progress_and_results(page):
    register(page)
    drop(
        page,
        file_payload("first.jpg", noisy_jpeg(), "image/jpeg"),
        file_payload(
            "second.png", make_image_bytes("PNG", color=(20, 90, 200)), "image/png"
        ),
        file_payload(
            "third.webp", make_image_bytes("WEBP", color=(20, 160, 60)), "image/webp"
        ),
    )
    wait_previews(page, 3)
    names = page.page.locator("#previews .preview-name").all_inner_texts()
    assert names == ["first.jpg", "second.png", "third.webp"]

    # Remove buttons are labelled with the file they remove.
    page.page.get_by_role("button", name="Remove third.webp").click()
    wait_previews(page, 2)
    assert (
        page.page.evaluate("document.getElementById('image-input').files.length") == 2
    )
    page.audit("04-upload-previews.png")

    # Slow the network down so the upload and the inference phase are visible.
    cdp = page.page.context.new_cdp_session(page.page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 200,
            "downloadThroughput": -1,
            "uploadThroughput": 60 * 1024,
        },
    )
    # Every text the progress indicator shows, reported back as it changes.
    phases: list[str] = []
    page.page.expose_function("reportPhase", lambda text: phases.append(text))
    page.page.evaluate(
        """() => {
        const text = document.getElementById('upload-progress-text');
        new MutationObserver(() => window.reportPhase(text.textContent))
            .observe(text, {childList: true, characterData: true, subtree: true});
    }"""
    )
    page.page.get_by_role("button", name="Classify").click()
    progress = page.page.locator("#upload-progress")
    progress.wait_for(state="visible")
    assert page.page.get_by_role("button", name="Classify").is_disabled()
    assert page.page.locator("#upload-form").get_attribute("aria-busy") == "true"
    # The throttled upload takes seconds: the bar moves before the model runs.
    page.page.wait_for_function(
        "() => /Uploading… [1-9]/.test("
        "document.getElementById('upload-progress-text')?.textContent)"
    )
    assert 0 < page.page.locator("#upload-progress-bar").evaluate("b => b.value") <= 100
    page.page.screenshot(path=str(SCREENSHOTS / "05-upload-progress.png"))
    page.page.wait_for_url(re.compile(r"/results\?ids="), timeout=60_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": -1,
        },
    )
    cdp.detach()
    page.check()
    # Upload progress, then the model's turn, then the results.
    assert any(re.fullmatch(r"Uploading… [1-9]\d?%", p) for p in phases), phases
    assert "Classifying 2 photos…" in phases
    assert "Done. Opening the results…" in phases

    cards = page.page.locator(".prediction-card .card-title")
    assert cards.all_inner_texts() == ["first.jpg", "second.png"]
    assert page.page.locator(".prediction-card progress").count() == 2
    page.audit("06-results.png")

    page.page.get_by_role("link", name="first.jpg").click()
    page.page.wait_for_url(re.compile(r"/predictions/\d+$"))
    check_result_page(page)


def check_result_page(page: Watched) -> None:
    """Top-k bars and percentages, model/weights/timing, not-sure state."""
    bars = page.page.locator("#predictions progress")
    assert bars.count() == 5
    scores = page.page.locator("#predictions .prediction-score").all_inner_texts()
    assert all(re.fullmatch(r"\d+\.\d%", score) for score in scores), scores
    values = [
        float(v)
        for v in page.page.eval_on_selector_all(
            "#predictions progress", "bars => bars.map((bar) => bar.value)"
        )
    ]
    assert values == sorted(values, reverse=True) and 0 < values[0] <= 1
    facts = page.page.locator(".facts").inner_text()
    for word in ("Model", "resnet50", "Weights", "random", "Inference", "ms"):
        assert word in facts
    assert page.page.locator("#random-weights-banner").is_visible()
    # "Not sure" below the threshold: 20% unless the person sets another.
    assert page.page.locator("#not-sure").is_visible() == (values[0] < 0.2)
    set_threshold(page, 100)
    assert page.page.locator("#not-sure").is_visible()
    assert page.page.locator("#result-heading").inner_text().startswith("Not sure")
    assert "below the 100.0% threshold" in page.page.locator("#not-sure").inner_text()
    page.audit("07-result-not-sure.png")

    set_threshold(page, 0)
    assert page.page.locator("#not-sure").count() == 0
    assert not page.page.locator("#result-heading").inner_text().startswith("Not sure")
    page.audit("08-result.png")
    # The threshold is kept for the session: the history uses it too.
    page.goto("/history")
    assert page.page.locator(".history-item").count() == 2
    assert page.page.locator(".tag-unsure").count() == 0


def test_file_picker_keyboard_and_paste(page):
    register(page)
    # Listen before any key is pressed: Playwright turns file-chooser
    # interception on asynchronously, and a chooser opened before that is lost.
    choosers = []
    page.page.on("filechooser", lambda chooser: choosers.append(chooser))
    # Keyboard: Tab reaches "Choose photos", which shows a visible focus ring ...
    choose = page.page.get_by_role("button", name="Choose photos")
    for _ in range(30):
        page.page.keyboard.press("Tab")
        if page.page.evaluate("document.activeElement.id") == "choose-button":
            break
    else:
        raise AssertionError("Tab never reached the Choose photos button")
    outline = choose.evaluate(
        "el => { const s = getComputedStyle(el); "
        "return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    assert outline[0] != "none" and outline[1] >= 2, outline
    # ... and Enter opens the file picker.
    page.page.keyboard.press("Enter")
    for _ in range(50):
        if choosers:
            break
        page.page.wait_for_timeout(100)
    assert len(choosers) == 1, "Enter on 'Choose photos' opened no file chooser"
    choosers[0].set_files(
        [
            {
                "name": "upright.jpg",
                "mimeType": "image/jpeg",
                "buffer": exif_rotated_jpeg(),
            }
        ]
    )
    wait_previews(page, 1)
    # The preview is drawn upright, as the server will store it.
    size = page.page.locator("#previews canvas").evaluate(
        "c => [Number(c.dataset.naturalWidth), Number(c.dataset.naturalHeight)]"
    )
    assert size == [240, 320]

    # Paste from the clipboard adds to the selection, with its own name.
    page.page.evaluate(
        PASTE_FILES,
        {"files": [file_payload("image.png", make_image_bytes("PNG"), "image/png")]},
    )
    wait_previews(page, 2)
    pasted = page.page.locator("#previews .preview-name").nth(1).inner_text()
    assert re.fullmatch(r"pasted-[\d-]+-1\.png", pasted), pasted

    # Remove the pasted one with the keyboard, then submit with the keyboard.
    page.page.get_by_role("button", name=f"Remove {pasted}").focus()
    page.page.keyboard.press("Enter")
    wait_previews(page, 1)
    page.page.get_by_role("button", name="Classify").focus()
    with page.page.expect_navigation(url=re.compile(r"/predictions/\d+$")):
        page.page.keyboard.press("Enter")
    page.check()
    # The stored image is shown with its orientation corrected.
    image = page.page.locator(".result-thumb")
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [192, 256]
    assert "240 × 320 px" in page.page.locator("figcaption").inner_text()


def test_upload_form_works_without_javascript(new_page):
    plain = new_page(java_script_enabled=False)
    register(plain)
    page = plain.page
    # The page's modules never ran: the native input and its label are there.
    assert page.locator("#choose-button").is_hidden()
    assert page.locator("#upload-form.is-enhanced").count() == 0
    page.get_by_label("Choose photos").set_input_files(
        [
            {"name": "one.jpg", "mimeType": "image/jpeg", "buffer": jpeg()},
            {"name": "two.jpg", "mimeType": "image/jpeg", "buffer": jpeg((200, 300))},
        ]
    )
    with page.expect_navigation(url=re.compile(r"/(predictions|results)")):
        page.get_by_role("button", name="Classify").click()
    plain.check()
    text = page.inner_text("main")
    assert "one.jpg" in text and "two.jpg" in text


def test_upload_errors_are_explained_and_nothing_is_sent(page, server):
    register(page)
    drop(
        page,
        file_payload("notes.txt", b"just text", "text/plain"),
        file_payload("huge.jpg", b"\xff\xd8" + b"\0" * MAX_UPLOAD_BYTES, "image/jpeg"),
    )
    errors = page.page.locator("#client-errors")
    errors.wait_for(state="visible")
    text = errors.inner_text()
    assert "notes.txt: not a supported image" in text
    assert "huge.jpg is 2.0 MB; the limit is 2.0 MB." in text
    assert page.page.locator("#previews .preview").count() == 0

    # Too many pixels: the browser decodes it and refuses before uploading.
    big = make_image_bytes("PNG", size=(1200, 1000))
    drop(page, file_payload("wide.png", big, "image/png"))
    wait_error_mentioning(page, "wide.png")
    assert "1200 × 1000 pixels; the limit is 1 megapixels" in errors.inner_text()
    assert page.page.locator("#previews .preview").count() == 0

    # Submitting nothing says what to do.
    page.page.get_by_role("button", name="Classify").click()
    assert "Choose at least one photo first." in errors.inner_text()

    # The server still decides: bytes that only claim to be a JPEG are refused
    # by the server, and the message is shown on the page.
    drop(page, file_payload("fake.jpg", b"this is not a jpeg at all", "image/jpeg"))
    page.page.locator("#previews .preview").first.wait_for()
    page.expected = [re.compile("status of 400")]
    page.page.get_by_role("button", name="Classify").click()
    wait_error_mentioning(page, "fake.jpg")
    assert "fake.jpg:" in errors.inner_text()
    assert page.page.url.endswith("/")
    assert page.page.get_by_role("button", name="Classify").is_enabled()
    page.audit("09-upload-errors.png")
    page.expected = []
    page.goto("/history")
    assert page.page.locator(".history-item").count() == 0


# --------------------------------------------------------------------------
# History


def upload_named(page: Watched, names: list[str]) -> None:
    page.goto("/")
    files = [
        file_payload(name, jpeg((200 + 10 * i, 150)), "image/jpeg")
        for i, name in enumerate(names)
    ]
    upload_via_picker(page, files)


def test_history_search_filter_sort_paginate_delete_and_export(page, tmp_path):
    register(page)
    upload_named(page, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    page.goto("/history")
    assert page.page.locator(".history-item").count() == PAGE_SIZE
    assert "4 predictions" in page.page.locator("#history-count").inner_text()
    page.audit("10-history.png")

    # Pagination keeps going to the fourth.
    page.page.get_by_role("link", name="Next →").click()
    page.page.wait_for_url(re.compile(r"page=2"))
    page.check()
    assert page.page.locator(".history-item").count() == 1

    # Search by the label of one prediction.
    page.goto("/history")
    label = page.page.locator(".card-label").first.inner_text()
    page.page.get_by_label("Label contains").fill(label)
    page.page.get_by_role("button", name="Apply").click()
    page.page.wait_for_url(re.compile(r"q="))
    page.check()
    labels = page.page.locator(".card-label").all_inner_texts()
    assert labels and all(label.lower() in found.lower() for found in labels)
    page.page.get_by_label("Label contains").fill("no such label anywhere")
    page.page.get_by_role("button", name="Apply").click()
    page.page.wait_for_url(re.compile(r"q=no"))
    assert page.page.get_by_text("Nothing matches these filters.").is_visible()

    # Date filters: from tomorrow finds nothing, up to today finds all four.
    today = datetime.now(UTC).date()
    page.goto(f"/history?start={(today + timedelta(days=1)).isoformat()}")
    assert page.page.locator(".history-item").count() == 0
    page.goto("/history")
    page.page.get_by_label("To (UTC)").fill(today.isoformat())
    page.page.get_by_label("Sort by").select_option("uncertain")
    page.page.get_by_role("button", name="Apply").click()
    page.page.wait_for_url(re.compile(r"sort=uncertain"))
    page.check()
    assert "4 predictions match" in page.page.locator("#history-count").inner_text()
    shown = [
        float(s.rstrip("%")) for s in page.page.locator(".card-score").all_inner_texts()
    ]
    assert shown == sorted(shown)

    # Export what is shown, as CSV and as JSON.
    page.goto("/history")
    with page.page.expect_download() as download:
        page.page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(row["filename"] for row in rows) == [
        "a.jpg",
        "b.jpg",
        "c.jpg",
        "d.jpg",
    ]
    assert download.value.suggested_filename.endswith(".csv")
    with page.page.expect_download() as download:
        page.page.get_by_role("link", name="Export JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert len(exported["items"]) == 4
    assert all(len(item["predictions"]) == 5 for item in exported["items"])

    # Delete several at once (with a confirmation) ...
    page.page.once("dialog", lambda dialog: dialog.accept())
    page.page.get_by_label("Select d.jpg").check()
    page.page.get_by_label("Select c.jpg").check()
    assert page.page.locator("#selected-count").inner_text() == "2 predictions selected"
    page.page.get_by_role("button", name="Delete selected").click()
    page.page.wait_for_load_state("load")
    page.check()
    assert page.page.get_by_text("Deleted 2 predictions.").is_visible()
    names = page.page.locator(".card-title").all_inner_texts()
    assert sorted(names) == ["a.jpg", "b.jpg"]
    # ... and one on its own.
    page.page.get_by_role("button", name="Delete b.jpg").click()
    page.page.wait_for_load_state("load")
    page.check()
    assert page.page.locator(".card-title").all_inner_texts() == ["a.jpg"]
    # Select all on this page.
    page.page.get_by_label("Select all on this page").check()
    assert page.page.get_by_label("Select a.jpg").is_checked()


# --------------------------------------------------------------------------
# Sharing


def test_share_a_result_and_revoke_the_link(page, new_page):
    username = register(page)
    upload_named(page, ["private-name.jpg"])
    result_url = page.page.url
    page.page.get_by_role("button", name="Create public link").click()
    page.page.wait_for_load_state("load")
    page.check()
    link = page.page.get_by_label("Public link").input_value()
    assert re.fullmatch(re.escape(page.base_url) + r"/s/[A-Za-z0-9_-]{43}", link)
    page.audit("11-result-shared.png")

    visitor = new_page()
    response = visitor.page.goto(link)
    assert response.status == 200
    assert response.headers["cache-control"] == "no-store"
    visitor.check(response)
    label = page.page.locator("#predictions .prediction-label").first.inner_text()
    assert (
        visitor.page.locator("#predictions .prediction-label").first.inner_text()
        == label
    )
    html = visitor.page.content()
    assert username not in html and "private-name" not in html
    assert "/predictions/" not in html
    src = visitor.page.locator(".result-thumb").get_attribute("src")
    assert src.startswith("/s/")
    visitor.audit("12-shared.png")

    page.page.get_by_role("button", name="Revoke link").click()
    page.page.wait_for_load_state("load")
    page.check()
    assert page.page.url == result_url
    assert page.page.get_by_role("button", name="Create public link").is_visible()

    visitor.expected = [re.compile("status of 404")]
    assert visitor.page.goto(link).status == 404
    visitor.check()
    assert visitor.page.get_by_text("Page not found").is_visible()
    assert visitor.page.goto(page.base_url + src).status == 404


# --------------------------------------------------------------------------
# Account


def test_account_tokens_password_retention_and_deletion(page, new_page):
    username = register(page)
    page.goto("/account")
    page.audit("13-account.png")

    # API tokens: create with a name, shown once, then revoke.
    page.page.get_by_label("Token name").fill("nightly import")
    page.page.get_by_role("button", name="Create token").click()
    page.page.wait_for_load_state("load")
    page.check()
    token = page.page.locator(".token-value code").inner_text()
    assert token.startswith("sc_")
    page.audit("14-account-new-token.png")
    page.goto("/account")
    assert token not in page.page.content()
    page.page.get_by_role("button", name="Revoke nightly import").click()
    page.page.wait_for_load_state("load")
    assert page.page.get_by_text("Token 'nightly import' revoked.").is_visible()
    assert page.page.locator(".token-revoked").count() == 1

    # History retention.
    page.page.get_by_label("Keep my history for").select_option("30")
    page.page.get_by_role("button", name="Save").click()
    page.page.wait_for_load_state("load")
    page.check()
    assert page.page.get_by_text("History is now kept for 30 days.").is_visible()
    page.goto("/history")
    assert "kept for 30 days" in page.page.locator("#history-count").inner_text()

    # Change password (the existing page), linked from the account page.
    page.goto("/account")
    page.page.get_by_role("link", name="Change password").click()
    page.page.wait_for_url(re.compile(r"/account/password$"))
    page.audit("15-change-password.png")
    new_password = "an even longer new password"
    page.page.get_by_label("Current password").fill(PASSWORD)
    page.page.get_by_label("New password", exact=True).fill(new_password)
    page.page.get_by_label("Repeat new password").fill(new_password)
    page.page.get_by_role("button", name="Change password").click()
    page.page.wait_for_url(re.compile(r"/account$"))
    page.check()
    assert page.page.get_by_text("Password changed.").is_visible()
    sign_out(page)
    sign_in(page, username, new_password)
    page.page.wait_for_url(page.base_url + "/")
    page.check()

    # Delete the account: a wrong password is refused, the right one deletes.
    upload_named(page, ["soon-gone.jpg"])
    page.goto("/account")
    page.expected = [re.compile("status of 400")]
    page.page.get_by_label("Your password").fill("not my password")
    page.page.get_by_role("button", name="Delete my account").click()
    page.page.wait_for_load_state("load")
    assert page.page.get_by_text("The password is wrong.").is_visible()
    page.expected = []
    page.page.get_by_label("Your password").fill(new_password)
    page.page.get_by_role("button", name="Delete my account").click()
    page.page.wait_for_url(re.compile(r"/login$"))
    page.check()
    assert page.page.get_by_text(
        "Your account and all its data are deleted."
    ).is_visible()
    page.expected = [re.compile("status of 401")]
    sign_in(page, username, new_password)
    page.page.wait_for_load_state("load")
    assert page.page.get_by_text("Unknown username or wrong password.").is_visible()


# --------------------------------------------------------------------------
# Phone-sized screen


def test_phone_sized_screen(new_page):
    phone = new_page(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    register(phone)

    def fits() -> None:
        overflow = (
            phone.page.evaluate("document.documentElement.scrollWidth") - PHONE["width"]
        )
        assert overflow <= 0, f"{phone.page.url} scrolls sideways by {overflow}px"

    fits()
    drop(
        phone,
        file_payload("phone-1.jpg", jpeg((300, 400)), "image/jpeg"),
        file_payload("phone-2.jpg", jpeg((400, 300)), "image/jpeg"),
    )
    wait_previews(phone, 2)
    fits()
    phone.audit("16-phone-upload.png")
    phone.page.get_by_role("button", name="Remove phone-2.jpg").tap()
    wait_previews(phone, 1)
    with phone.page.expect_navigation(url=re.compile(r"/predictions/\d+$")):
        phone.page.get_by_role("button", name="Classify").tap()
    phone.check()
    fits()
    phone.audit("17-phone-result.png")
    phone.goto("/history")
    fits()
    phone.audit("18-phone-history.png")
