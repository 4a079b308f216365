"""Settings → Sending domain: an owner adds the domain and its ESP account, reads the records to publish, checks
them against DNS (a real server on 127.0.0.1) or is told the check was skipped; the credentials are never shown
again; every change is in the audit log; marketers and viewers read only."""

import pytest
from django.urls import reverse

from lifecycle.models import Event, Membership, SendingDomain
from tests.dns_server import FakeDns
from tests.lifecycle.test_sending_domains import DKIM_TXT, publish_all

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

FORM = {"domain": "Acme.Example", "esp": "postmark", "credential_server_token": "pm-secret-token-1",
        "dkim_selector": "pm", "dkim_value": DKIM_TXT}


@pytest.fixture
def as_owner(tenant):
    return client_for(make_user("olivia", tenant, Membership.Role.OWNER))


@pytest.fixture
def dns_server(settings):
    server = FakeDns()
    settings.SENDING_DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
    settings.SENDING_DNS_TIMEOUT = 0.5
    yield server
    server.close()


def url(tenant, name="settings-domain"):
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug})


def audit(tenant):
    return [(e.type, e.data) for e in Event.objects.for_tenant(tenant).filter(
        type__startswith="store.sending_domain").order_by("pk")]


def test_an_owner_adds_the_domain_publishes_and_checks_it(as_owner, tenant, dns_server):
    assert as_owner.post(url(tenant), FORM).status_code == 302
    page = as_owner.get(url(tenant)).content.decode()
    assert "pm-secret-token-1" not in page and "credentials saved" in page
    assert "v=spf1 include:spf.mtasv.net ~all" in page and "pm._domainkey.acme.example" in page
    assert "_dmarc.acme.example" in page and 'id="domain-state">Unverified' in page

    publish_all(dns_server)
    checked = as_owner.post(url(tenant, "settings-domain-check")).content.decode()
    assert 'id="domain-state">Verified' in checked and checked.count("✓") == 3
    assert SendingDomain.objects.for_tenant(tenant).get().state == "verified"
    assert [t for t, _ in audit(tenant)] == ["store.sending_domain_added", "store.sending_domain_checked"]
    added = audit(tenant)[0][1]
    assert added["changes"]["domain"] == ["", "acme.example"] and added["changes"]["credentials"] == ["", "(changed)"]
    log = as_owner.get(reverse("workspace:settings-audit", kwargs={"tenant": tenant.slug})).content.decode()
    assert "store.sending_domain_checked" in log and "pm-secret-token-1" not in log


def test_a_failing_record_says_what_to_fix_and_no_network_says_the_check_was_skipped(as_owner, tenant, dns_server):
    as_owner.post(url(tenant), FORM)
    checked = as_owner.post(url(tenant, "settings-domain-check")).content.decode()
    assert "No SPF record (TXT starting v=spf1) at acme.example." in checked
    assert 'id="domain-state">Unverified' in checked
    dns_server.silent = True
    events = Event.objects.for_tenant(tenant).count()
    skipped = as_owner.post(url(tenant, "settings-domain-check")).content.decode()
    assert "Check skipped: DNS could not be reached" in skipped
    assert Event.objects.for_tenant(tenant).count() == events


@pytest.mark.parametrize(("data", "message"), [
    ({"domain": "https://acme.example/"}, "Write the domain alone, such as mail.acme.com"),
    ({"credential_server_token": ""}, "Fill in the credentials of your Postmark account."),
    ({"dkim_selector": "p m"}, "A DKIM selector is letters, digits and hyphens"),
    ({"esp": "carrier-pigeon"}, "Select a valid choice."),
])
def test_bad_input_is_a_400_with_the_reason_and_nothing_written(as_owner, tenant, data, message):
    response = as_owner.post(url(tenant), {**FORM, **data})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SendingDomain.objects.for_tenant(tenant).exists() and audit(tenant) == []


def test_the_sender_address_must_be_on_the_sending_domain(as_owner, tenant):
    as_owner.post(url(tenant), FORM)
    data = {"sender_name": "Acme", "sender_email": "hi@other.example", "reply_to": "", "time_zone": "UTC",
            "quiet_hours_start": "21:00", "quiet_hours_end": "08:00", "frequency_cap_hours": "16"}
    response = as_owner.post(url(tenant, "settings"), data)
    assert response.status_code == 400
    assert "hi@other.example is not on your sending domain acme.example" in response.content.decode()
    assert as_owner.post(url(tenant, "settings"), {**data, "sender_email": "hi@news.acme.example"}).status_code == 302


def test_only_an_owner_changes_it(tenant, as_owner, as_marketer, as_viewer, dns_server):
    as_owner.post(url(tenant), FORM)
    before = list(SendingDomain.objects.for_tenant(tenant).values())
    for client in (as_marketer, as_viewer):
        assert client.get(url(tenant)).status_code == 200
        for name in ("settings-domain", "settings-domain-check", "settings-domain-remove"):
            assert client.post(url(tenant, name), {**FORM, "domain": "evil.example"}).status_code == 403
    assert list(SendingDomain.objects.for_tenant(tenant).values()) == before
    assert dns_server.asked == []
    assert as_owner.post(url(tenant, "settings-domain-remove")).status_code == 302
    assert not SendingDomain.objects.for_tenant(tenant).exists()
    assert audit(tenant)[-1] == ("store.sending_domain_removed", {"domain": "acme.example", "by": "olivia"})
