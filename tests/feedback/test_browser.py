"""In a real browser (Debian's chromium, driven by Playwright) against the live server:
a person's click records the score; a scanner that runs every page records nothing."""

import datetime as dt
import os
import re

import pytest

from feedback.models import AnswerAttempt, SurveyResponse
from feedback.services import responses_settle_due
from lifecycle import clock

from .helpers import feedback_journey, nps_survey, send_feedback_email

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}


def _unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs chromium (.ci/run): a missing browser is a broken build
    pytest.skip(message)


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium); the browser tests need it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def links(api, tenant, live_server, settings) -> dict[int, str]:
    """The eleven buttons of a real feedback email, pointing at the live server."""
    settings.PUBLIC_BASE_URL = live_server.url
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    html = send_feedback_email(api, tenant).alternatives[0][0]
    return {int(label): href for href, label in re.findall(r'<a class="score"[^>]*href="([^"]+)"[^>]*>(\d+)</a>', html)}


def test_clicking_9_on_a_phone_records_9_and_the_thank_you_page_offers_a_review_and_sharing(browser, links, tenant):
    assert sorted(links) == list(range(11))
    page = browser.new_context(**PHONE).new_page()
    page.goto(links[9])
    page.wait_for_selector('#answer[data-state="recorded"]', timeout=10_000)
    assert page.is_checked("#score-9")
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.state) == (9, "provisional")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling

    page.fill("#comment", "Lovely beans")
    page.click("#send")
    page.wait_for_selector("#next-review")
    assert page.inner_text("h1") == "Thank you!"
    assert "Review House beans 1 kg" in page.inner_text("#next-review")
    # The share button opens the customer's referral page (/r/<signed token>, served by referrals).
    assert "/r/" in page.get_attribute("#next-share a", "href")
    response.refresh_from_db()
    assert (response.score, response.comment, response.state) == (9, "Lovely beans", "final")


def test_a_scanner_that_runs_every_page_within_seconds_records_nothing(browser, links, tenant):
    context = browser.new_context(user_agent="Mozilla/5.0 (compatible; SafeLinks-Detonator)")
    pages = [context.new_page() for _ in links]
    for page, score in zip(pages, sorted(links), strict=True):
        page.goto(links[score], wait_until="commit")
    for page in pages:
        page.wait_for_selector("#answer[data-state]", timeout=15_000)

    responses_settle_due(now=clock.now() + dt.timedelta(minutes=1))
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0
    attempts = AnswerAttempt.objects.for_tenant(tenant)
    assert attempts.count() == 11 and attempts.filter(automated=True).count() == 11


def test_without_javascript_the_page_asks_to_confirm(browser, links, tenant):
    page = browser.new_context(java_script_enabled=False, **PHONE).new_page()
    page.goto(links[6])
    assert page.inner_text("#send") == "Confirm my answer"
    assert AnswerAttempt.objects.for_tenant(tenant).count() == 0
    page.click("#send")
    page.wait_for_selector("h1:has-text('Thank you!')")
    response = SurveyResponse.objects.for_tenant(tenant).get()
    assert (response.score, response.state, response.category) == (6, "final", "negative")
