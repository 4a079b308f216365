"""A new store's owner, in a real browser, without /admin/: turns on two-factor (the code computed from the secret on
the page), signs out and back in with password and code, invites a marketer who accepts by the emailed link,
requires two-factor of the team (the marketer is sent to the setup page), and reads each change in the audit log."""

import re

import pytest
from django.core import mail

from lifecycle.models import Membership, Tenant
from tests.browser import DESKTOP, screenshot, sign_in

from .conftest import PASSWORD, make_user
from .two_factor_support import code

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MARKETER_PASSWORD = "plum orchard lantern 42"  # noqa: S105 - a test password


def test_owner_sets_up_two_factor_invites_a_marketer_and_requires_two_factor(browser, live_server, tenant):
    make_user("olivia", tenant, Membership.Role.OWNER)
    base = live_server.url
    page = sign_in(browser, live_server, "olivia", PASSWORD)

    # Two-factor: the QR code and the key; the code the app would show confirms it; recovery codes shown once.
    page.goto(f"{base}/app/account/two-factor/")
    assert page.locator("#qr svg").count() == 1
    secret = page.get_attribute("#totp-secret", "data-secret")
    page.fill("input[name=code]", code(secret))
    page.click("#two-factor-setup button.primary")
    assert page.locator("#recovery-codes li").count() == 10
    screenshot(page, "two-factor-recovery-codes")

    # Signed out, the password alone is not enough: the code step follows.
    page.click("header button.link")
    assert page.url == f"{base}/app/login/"
    page.fill("input[name=username]", "olivia")
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    assert page.url.startswith(f"{base}/app/login/code/")
    page.fill("input[name=code]", code(secret, steps_ahead=1))
    page.click("button.primary")
    page.wait_for_load_state("networkidle")
    assert page.url == f"{base}/app/acme/"
    assert page.inner_text("#whoami") == "olivia · owner"

    # Invite a marketer; they accept by the link in the email, making their account.
    page.goto(f"{base}/app/acme/settings/team/")
    page.fill("input[name=email]", "mara@example.com")
    page.select_option("select[name=role]", "marketer")
    page.click("#invite button.primary")
    assert "Invitation sent to mara@example.com" in page.inner_text("#invited")
    link = re.search(r"http://\S+/app/invite/[A-Za-z0-9_-]{43}/", mail.outbox[-1].body).group(0)
    invitee = browser.new_context(**DESKTOP).new_page()
    invitee.goto(base + link.split("127.0.0.1:8000", 1)[1])
    invitee.fill("input[name=password1]", MARKETER_PASSWORD)
    invitee.fill("input[name=password2]", MARKETER_PASSWORD)
    invitee.click("main button.primary")
    assert invitee.url == f"{base}/app/acme/"
    assert Membership.objects.filter(tenant=tenant, user__username="mara@example.com", role="marketer").exists()

    # The owner requires two-factor; the marketer, without it, is sent to the setup page from any store page.
    page.goto(f"{base}/app/acme/settings/security/")
    page.check("#require-two-factor")
    page.click("#requirement button.primary")
    assert page.inner_text("#requirement-state") == "required of every member"
    assert Tenant.objects.get(pk=tenant.pk).require_two_factor is True
    invitee.goto(f"{base}/app/acme/customers/")
    assert invitee.url.startswith(f"{base}/app/account/two-factor/?next=")
    assert "Acme Coffee requires two-factor sign-in for every member" in invitee.inner_text("#required")
    assert invitee.locator("#qr svg").count() == 1
    screenshot(invitee, "two-factor-required-setup")

    # The audit log shows each change, with who made it.
    page.goto(f"{base}/app/acme/settings/audit/")
    whats = page.locator("td.audit-what").all_inner_texts()
    for kind in ("store.member_2fa_enabled", "store.member_invited", "store.member_added",
                 "store.two_factor_required_changed"):
        assert kind in whats, (kind, whats)
    screenshot(page, "two-factor-audit-log")
