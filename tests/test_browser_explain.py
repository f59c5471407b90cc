"""Chromium against a real Gunicorn: "Why?" overlays the class activation map
on the result, results, history and shared pages, by mouse and keyboard, with axe and
console checks. Screenshots (desktop and phone) go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import CHROMIUM
from tests.test_browser import LABELS
from tests.test_browser import PHONE
from tests.test_browser import SCREENSHOTS
from tests.test_browser import Watched
from tests.test_browser import browser  # noqa: F401 (a fixture)
from tests.test_browser import file_payload
from tests.test_browser import jpeg
from tests.test_browser import new_page  # noqa: F401 (a fixture)
from tests.test_browser import page  # noqa: F401 (a fixture)
from tests.test_browser import register
from tests.test_browser import upload_via_picker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium"),
]

# The overlay's drawn cells: the canvas holds the 7x7 map, every pixel coloured.
OVERLAY_DRAWN = """
(canvas) => {
  const context = canvas.getContext('2d');
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let alpha = 0;
  for (let i = 3; i < data.length; i += 4) alpha += data[i] > 0 ? 1 : 0;
  return {width: canvas.width, height: canvas.height, coloured: alpha,
          shown: canvas.getBoundingClientRect().width};
}
"""


@pytest.fixture(scope="module")
def server(new_server):
    server = new_server(
        "explain",
        **({"IMAGENET_LABELS": str(LABELS)} if LABELS.exists() else {}),
    )
    yield server
    server.stop()


def assert_overlay_shown(watched: Watched, figure) -> None:
    canvas = figure.locator("canvas.why-overlay")
    canvas.wait_for(state="visible")
    drawn = canvas.evaluate(OVERLAY_DRAWN)
    assert (drawn["width"], drawn["height"], drawn["coloured"]) == (7, 7, 49)
    assert drawn["shown"] > 50  # scaled over the photo
    watched.check()


def test_why_toggles_the_map_with_mouse_and_keyboard(page, new_page):  # noqa: F811
    register(page)
    upload_via_picker(page, [file_payload("cat.jpg", jpeg(), "image/jpeg")])
    p = page.page
    figure = p.locator(".result-figure .why")
    toggle = p.get_by_role("button", name=re.compile("^Why"))
    assert toggle.get_attribute("aria-pressed") == "false"
    assert figure.locator("canvas.why-overlay").is_hidden()

    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    assert_overlay_shown(page, figure)
    status = p.locator(".why-description")
    first = status.inner_text()
    assert re.search(r": strongest in the .+; covers about \d+% of the photo\.$", first)

    # Another label by keyboard: the select is labelled, the words follow.
    select = p.get_by_label("Map for")
    options = select.locator("option").all_inner_texts()
    assert len(options) == 5
    select.focus()
    p.keyboard.press("ArrowDown")
    label = options[1].rsplit(" (", 1)[0]
    p.wait_for_function(
        "t => document.querySelector('.why-description').textContent.startsWith(t)",
        arg=label + ":",
    )
    assert p.locator(".why-legend").inner_text().replace("\n", " ").startswith("weak")
    page.audit("30-why-result.png")

    # Off again with the keyboard (Space on the focused toggle).
    toggle.focus()
    p.keyboard.press("Space")
    assert toggle.get_attribute("aria-pressed") == "false"
    assert figure.locator("canvas.why-overlay").is_hidden()
    page.check()

    # The shared page has the same overlay, for anyone with the link.
    p.get_by_role("button", name="Create public link").click()
    p.wait_for_load_state("load")
    link = p.get_by_label("Public link").input_value()
    visitor = new_page()
    visitor.page.goto(link)
    visitor.check()
    visitor.page.get_by_role("button", name=re.compile("^Why")).click()
    assert_overlay_shown(visitor, visitor.page.locator(".why"))
    visitor.audit("31-why-shared.png")


def test_why_on_the_results_cards_and_a_phone(page, new_page):  # noqa: F811
    username = register(page)
    files = [
        file_payload(f"photo-{i}.jpg", jpeg((240 + 40 * i, 180)), "image/jpeg")
        for i in range(2)
    ]
    upload_via_picker(page, files)
    p = page.page
    assert "/results" in p.url
    cards = p.locator(".prediction-card")
    assert cards.count() == 2
    toggle = cards.nth(1).get_by_role("button", name=re.compile("^Why"))
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    assert_overlay_shown(page, cards.nth(1))
    assert cards.nth(0).locator("canvas.why-overlay").is_hidden()
    page.audit("32-why-results.png")

    # The history page has the same toggle on each card.
    page.goto("/history")
    history_cards = p.locator(".prediction-card")
    assert history_cards.count() == 2
    toggle = history_cards.nth(0).get_by_role("button", name=re.compile("^Why"))
    toggle.focus()
    p.keyboard.press("Enter")
    assert toggle.get_attribute("aria-pressed") == "true"
    assert_overlay_shown(page, history_cards.nth(0))
    page.audit("40-why-history.png")

    phone = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.goto("/login")
    phone.page.get_by_label("Username").fill(username)
    from tests.helpers import PASSWORD

    phone.page.get_by_label("Password").fill(PASSWORD)
    phone.page.get_by_role("button", name="Sign in").click()
    phone.page.wait_for_url(phone.base_url + "/")
    phone.goto(p.url.removeprefix(page.base_url))
    phone.page.get_by_role("button", name=re.compile("^Why")).first.tap()
    assert_overlay_shown(phone, phone.page.locator(".prediction-card").first)
    phone.audit("33-why-results-phone.png")
    assert (SCREENSHOTS / "33-why-results-phone.png").exists()
