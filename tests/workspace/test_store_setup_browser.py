"""Issue 18's "done means", in a real browser: a new store's owner sets up loyalty, referrals, surveys, review
moderation, the brand, the sending domain (its records checked against a DNS server on 127.0.0.1) and two-factor
without /admin/, invites a marketer who accepts, and finds every change in the audit log; a customer's
preference page, on a phone, wears the brand. (The customer changing their preferences from an email's footer
on a phone, and the next email respecting them: tests/journeys/test_preferences_browser.py.)"""

import re

import pytest
from django.core import mail

from feedback.models import ReviewSettings, Survey
from lifecycle.links import make_token
from lifecycle.models import Customer, Membership, SendingDomain, Tenant
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Tier
from referrals.models import Program as ReferralProgram
from tests.browser import ARTIFACTS, DESKTOP, PHONE, screenshot, sign_in
from tests.dns_server import FakeDns
from tests.factories import order_payload
from tests.lifecycle.test_sending_domains import DKIM_TXT, publish_all

from .conftest import PASSWORD, make_user
from .two_factor_support import code

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MARKETER_PASSWORD = "plum orchard lantern 42"  # noqa: S105 - a test password
BRAND = "#1d4ed8"


@pytest.fixture
def dns_server(settings):
    server = FakeDns()
    settings.SENDING_DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
    settings.SENDING_DNS_TIMEOUT = 1
    yield server
    server.close()


def save(page, selector="button.primary[type=submit]"):
    page.click(selector)
    page.wait_for_load_state("networkidle")


def test_a_new_store_is_set_up_from_the_workspace_and_every_change_is_in_the_audit_log(
        browser, live_server, tenant, api, dns_server):
    make_user("olivia", tenant, Membership.Role.OWNER)
    base, store = live_server.url, f"{live_server.url}/app/acme"
    page = sign_in(browser, live_server, "olivia", PASSWORD)

    # Loyalty: the programme with its defaults, then a tier.
    page.goto(f"{store}/settings/loyalty/")
    save(page, "form[action$='/settings/loyalty/'] button.primary")
    page.fill("#tier-add input[name=tier-name]", "Gold")
    page.fill("#tier-add input[name=tier-threshold]", "500")
    page.fill("#tier-add input[name=tier-multiplier]", "1.5")
    save(page, "#tier-add button.primary")
    assert "Gold" in page.inner_text("#tier-list")

    # Referrals: where the friend lands.
    page.goto(f"{store}/settings/referrals/")
    page.fill("input[name=store_url]", "https://acme.example/")
    page.fill("input[name=reward_webhook_url]", "https://acme.example/hooks/rewards")
    save(page, "#referral-program button.primary")
    assert "Referral programme saved" in page.inner_text(".messages"), page.locator(".field-error").all_inner_texts()

    # Surveys: the NPS survey, with the store's own question.
    page.goto(f"{store}/settings/surveys/")
    page.click("form.inline:has(input[value=nps]) button")
    page.wait_for_load_state("networkidle")
    page.fill("input[name=question]", "Would you recommend Acme's coffee to a friend?")
    save(page)

    # Reviews: published at 4 stars and up without links; the rest wait.
    page.goto(f"{store}/settings/reviews/")
    page.select_option("select[name=auto_publish_min_rating]", "4")
    save(page, "#review-settings button.primary")
    assert "Review rules saved" in page.inner_text(".messages")

    # The brand, previewed on a sample email before it is saved.
    page.goto(f"{store}/settings/brand/")
    page.fill("input[name=brand_logo_url]", "https://cdn.acme.example/logo.png")
    page.fill("input[name=brand_color]", BRAND)
    page.fill("input[name=brand_background]", "#ffffff")
    page.fill("textarea[name=postal_address]", "Acme Coffee, Röstereiweg 1, 10115 Berlin")
    save(page, "#preview-settings")
    assert "not saved yet" in page.inner_text("#email-preview h2")
    email = page.frame_locator("iframe.email-preview")
    assert email.locator("img.logo").get_attribute("src") == "https://cdn.acme.example/logo.png"
    assert "Röstereiweg 1" in email.locator(".footer").inner_text()
    assert Tenant.objects.get(pk=tenant.pk).brand_color == "#7a4b2a"  # a preview saves nothing
    assert email.locator(".card").is_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # the frame alone: a full-page shot leaves sandboxed frames blank
    page.locator("#email-preview").screenshot(path=str(ARTIFACTS / "setup-brand-email-preview.png"))
    page.locator("#page-preview").screenshot(path=str(ARTIFACTS / "setup-brand-page-preview.png"))
    save(page, "#brand button.primary")
    assert Tenant.objects.get(pk=tenant.pk).brand_color == BRAND

    # The sending domain: saved with the store's Postmark account, its records published, checked.
    page.goto(f"{store}/settings/sending-domain/")
    page.fill("input[name=domain]", "acme.example")
    page.select_option("select[name=esp]", "postmark")
    page.fill("input[name=credential_server_token]", "pm-token-of-acme")
    page.fill("input[name=dkim_selector]", "pm")
    page.fill("textarea[name=dkim_value]", DKIM_TXT)
    save(page, "#save-domain")
    assert page.inner_text("#domain-state") == "Unverified"
    assert "v=spf1 include:spf.mtasv.net ~all" in page.inner_text("#record-spf")
    publish_all(dns_server)
    save(page, "#check-now")
    assert page.inner_text("#domain-state") == "Verified"
    assert page.locator(".record-result").all_inner_texts() == ["✓ SPF found.", "✓ DKIM found.", "✓ DMARC found."]
    screenshot(page, "setup-sending-domain-verified")

    # The sender, on that domain.
    page.goto(f"{store}/settings/")
    page.fill("input[name=sender_name]", "Acme Coffee")
    page.fill("input[name=sender_email]", "hello@acme.example")
    save(page, "#sender button.primary")
    assert page.inner_text("#preview-from") == "Acme Coffee <hello@acme.example>"

    # A marketer is invited and accepts by the emailed link.
    page.goto(f"{store}/settings/team/")
    page.fill("input[name=email]", "mara@example.com")
    page.select_option("select[name=role]", "marketer")
    page.click("#invite button.primary")
    link = re.search(r"http://\S+/app/invite/[A-Za-z0-9_-]{43}/", mail.outbox[-1].body).group(0)
    invitee = browser.new_context(**DESKTOP).new_page()
    invitee.goto(base + link.split("127.0.0.1:8000", 1)[1])
    invitee.fill("input[name=password1]", MARKETER_PASSWORD)
    invitee.fill("input[name=password2]", MARKETER_PASSWORD)
    invitee.click("main button.primary")
    assert invitee.url == f"{store}/"

    # Two-factor for the owner.
    page.goto(f"{base}/app/account/two-factor/")
    secret = page.get_attribute("#totp-secret", "data-secret")
    page.fill("input[name=code]", code(secret))
    page.click("#two-factor-setup button.primary")
    assert page.locator("#recovery-codes li").count() == 10

    # What the store now is, in the database…
    assert LoyaltyProgram.objects.for_tenant(tenant).exists() and Tier.objects.for_tenant(tenant).get().name == "Gold"
    assert ReferralProgram.objects.for_tenant(tenant).get().store_url == "https://acme.example/"
    assert Survey.objects.for_tenant(tenant).get(key="nps").question == "Would you recommend Acme's coffee to a friend?"
    assert ReviewSettings.objects.for_tenant(tenant).get().auto_publish_min_rating == 4
    assert SendingDomain.objects.for_tenant(tenant).get().state == "verified"
    assert Membership.objects.filter(tenant=tenant, user__username="mara@example.com", role="marketer").exists()

    # …and every change in the audit log, with who made it.
    page.goto(f"{store}/settings/audit/")
    if page.url.startswith(f"{base}/app/login/code/"):  # the session proved the new device once already
        page.fill("input[name=code]", code(secret, steps_ahead=1))
        save(page)
    lines = list(zip(page.locator("td.audit-what").all_inner_texts(), page.locator("td.audit-who").all_inner_texts(),
                     strict=True))
    whats = [what for what, _who in lines]
    for kind in ("store.loyalty_program_created", "store.loyalty_tier_added", "store.referral_program_created",
                 "store.survey_created", "store.survey_changed", "store.review_settings_changed",
                 "store.sending_domain_added", "store.sending_domain_checked", "store.member_invited",
                 "store.member_added", "store.member_2fa_enabled"):
        assert kind in whats, (kind, whats)
    assert whats.count("store.settings_changed") == 2  # the brand and the sender
    assert {who for what, who in lines if what != "store.member_added"} == {"olivia"}
    assert "pm-token-of-acme" not in page.content()
    screenshot(page, "setup-audit-log")

    # A customer's preference page, on a phone, wears the brand.
    assert api.post("/api/v1/orders", order_payload(customer={"external_id": "c1", "email": "ada@example.com",
                                                              "marketing_consent": True})).status_code == 201
    customer = Customer.objects.for_tenant(tenant).get(external_id="c1")
    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{base}/u/{make_token('unsubscribe', tenant_id=tenant.pk, customer_id=customer.pk)}/preferences")
    assert phone.locator("img.logo").get_attribute("src") == "https://cdn.acme.example/logo.png"
    assert phone.evaluate("getComputedStyle(document.querySelector('#save')).backgroundColor") == "rgb(29, 78, 216)"
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(phone, "setup-preferences-branded-phone")
