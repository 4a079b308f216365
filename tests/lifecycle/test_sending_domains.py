"""The store's sending domain: the records to publish, the check against a real DNS server on 127.0.0.1
(tests/dns_server.py), skipped and saying so where DNS does not answer, credentials encrypted at rest, and the
send gate that holds email from an unverified domain when SENDING_DOMAIN_REQUIRED."""

import json

import pytest

from lifecycle import crypto
from lifecycle.errors import ServiceError
from lifecycle.models import Event, SendingDomain
from lifecycle.sending_domains import (
    esp_connection,
    records,
    sending_domain_check,
    sending_domain_save,
    unverified_sender_reason,
    verified_domains,
)
from tests.dns_server import FakeDns

pytestmark = pytest.mark.django_db

DKIM_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 300 + "IDAQAB"
DKIM_TXT = f"v=DKIM1; k=rsa; p={DKIM_KEY}"


@pytest.fixture
def dns_server(settings):
    server = FakeDns()
    settings.SENDING_DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
    settings.SENDING_DNS_TIMEOUT = 0.5
    yield server
    server.close()


def add(tenant, **values):
    full = {"domain": "acme.example", "esp": "postmark", "dkim_selector": "pm", "dkim_value": DKIM_TXT, **values}
    credentials = {"server_token": "pm-token-acme", "api_key": "key-acme"} if full["esp"] else {}
    return sending_domain_save(tenant=tenant, values=full, credentials=credentials, by="olivia")


def publish_all(server):
    server.add("acme.example", "TXT", "v=spf1 include:spf.mtasv.net ~all", "google-site-verification=abc")
    server.add("pm._domainkey.acme.example", "TXT", DKIM_TXT)
    server.add("_dmarc.acme.example", "TXT", "v=DMARC1; p=none")


def row(tenant) -> SendingDomain:
    return SendingDomain.objects.for_tenant(tenant).get()


def test_the_records_to_publish_follow_the_esp(tenant):
    add(tenant)
    assert [(r.key, r.type, r.name, r.value) for r in records(row(tenant), report_to="dmarc@acme.example")] == [
        ("spf", "TXT", "acme.example", "v=spf1 include:spf.mtasv.net ~all"),
        ("dkim", "TXT", "pm._domainkey.acme.example", DKIM_TXT),
        ("dmarc", "TXT", "_dmarc.acme.example", "v=DMARC1; p=none; rua=mailto:dmarc@acme.example")]
    add(tenant, esp="sendgrid", dkim_value="s1.domainkey.u123.wl.sendgrid.net")
    assert records(row(tenant))[1].type == "CNAME"


def test_all_three_records_found_verify_the_domain(tenant, dns_server):
    add(tenant)
    publish_all(dns_server)
    outcome = sending_domain_check(tenant=tenant, by="olivia")
    assert outcome.skipped == "" and outcome.verified
    assert {k: r["ok"] for k, r in outcome.results.items()} == {"spf": True, "dkim": True, "dmarc": True}
    saved = row(tenant)
    assert saved.state == "verified" and saved.verified_at is not None
    assert ("_dmarc.acme.example", "TXT") in dns_server.asked  # asked the server, not a stub
    [event] = Event.objects.for_tenant(tenant).filter(type="store.sending_domain_checked")
    assert event.data == {"domain": "acme.example", "changes": {"state": ["unverified", "verified"]},
                          "records": {"spf": True, "dkim": True, "dmarc": True}, "by": "olivia"}


@pytest.mark.parametrize(("break_it", "record", "message"), [
    (lambda s: s.records.pop(("acme.example", "TXT")), "spf", "No SPF record (TXT starting v=spf1) at acme.example."),
    (lambda s: s.records.__setitem__(("acme.example", "TXT"), ["v=spf1 include:sendgrid.net ~all"]), "spf",
     "The SPF record does not include spf.mtasv.net"),
    (lambda s: s.records.__setitem__(("acme.example", "TXT"), ["v=spf1 -all", "v=spf1 include:spf.mtasv.net ~all"]),
     "spf", "More than one SPF record"),
    (lambda s: s.records.__setitem__(("pm._domainkey.acme.example", "TXT"), ["v=DKIM1; k=rsa; p=OTHERKEY"]), "dkim",
     "The DKIM key at pm._domainkey.acme.example is not the one your ESP gave."),
    (lambda s: s.records.pop(("_dmarc.acme.example", "TXT")), "dmarc", "No DMARC record"),
])
def test_a_missing_or_wrong_record_leaves_the_domain_unverified_with_the_reason(tenant, dns_server, break_it, record,
                                                                                message):
    add(tenant)
    publish_all(dns_server)
    break_it(dns_server)
    outcome = sending_domain_check(tenant=tenant, by="olivia")
    assert not outcome.verified
    assert [k for k, r in outcome.results.items() if not r["ok"]] == [record]
    assert outcome.results[record]["message"].startswith(message)
    assert row(tenant).state == "unverified" and row(tenant).verified_at is None


def test_a_cname_dkim_is_checked_as_a_cname(tenant, dns_server):
    add(tenant, esp="sendgrid", dkim_selector="s1", dkim_value="s1.domainkey.u123.wl.sendgrid.net")
    dns_server.add("acme.example", "TXT", "v=spf1 include:sendgrid.net ~all")
    dns_server.add("_dmarc.acme.example", "TXT", "v=DMARC1; p=quarantine")
    dns_server.add("s1._domainkey.acme.example", "CNAME", "s1.domainkey.u999.wl.sendgrid.net.")
    assert sending_domain_check(tenant=tenant, by="o").results["dkim"]["ok"] is False
    dns_server.records[("s1._domainkey.acme.example", "CNAME")] = ["s1.domainkey.u123.wl.sendgrid.net."]
    assert sending_domain_check(tenant=tenant, by="o").verified


def test_no_answer_from_dns_skips_the_check_says_so_and_changes_nothing(tenant, dns_server):
    add(tenant)
    publish_all(dns_server)
    assert sending_domain_check(tenant=tenant, by="o").verified
    dns_server.silent = True
    events = Event.objects.for_tenant(tenant).count()
    outcome = sending_domain_check(tenant=tenant, by="o")
    assert outcome.skipped.startswith("DNS could not be reached (no name server answered for acme.example)")
    assert outcome.results == {} and row(tenant).state == "verified"
    assert Event.objects.for_tenant(tenant).count() == events


def test_dns_checks_turned_off_are_skipped(tenant, dns_server, settings):
    settings.SENDING_DNS_CHECK = False
    add(tenant)
    outcome = sending_domain_check(tenant=tenant, by="o")
    assert outcome.skipped.startswith("DNS checks are turned off on this server")
    assert dns_server.asked == [] and row(tenant).state == "unverified"


def test_credentials_are_encrypted_at_rest_and_never_in_the_audit_log(tenant):
    add(tenant)
    saved = row(tenant)
    assert "pm-token-acme" not in saved.credentials_encrypted
    assert json.loads(crypto.decrypt(saved.credentials_encrypted)) == {"server_token": "pm-token-acme"}  # its own only
    connection = esp_connection(tenant.pk)
    assert (connection.backend, connection.settings) == ("anymail.backends.postmark.EmailBackend",
                                                         (("server_token", "pm-token-acme"),))
    event = Event.objects.for_tenant(tenant).get(type="store.sending_domain_added")
    assert "pm-token-acme" not in json.dumps(event.data)
    assert event.data["changes"]["credentials"] == ["", "(changed)"]
    # Saved again without typing the token: kept. Switched to the platform's ESP: forgotten.
    sending_domain_save(tenant=tenant, values={"domain": "acme.example", "esp": "postmark", "dkim_selector": "pm",
                                               "dkim_value": DKIM_TXT}, credentials=None, by="o")
    assert row(tenant).credentials_encrypted == saved.credentials_encrypted
    add(tenant, esp="")
    assert row(tenant).credentials_encrypted == "" and esp_connection(tenant.pk) is None


@pytest.mark.parametrize(("values", "credentials", "message"), [
    ({"domain": "https://acme.example/"}, {"server_token": "t"}, "Write the domain alone, such as mail.acme.com"),
    ({"domain": "acme"}, {"server_token": "t"}, "'acme' is not a domain name such as mail.acme.com."),
    ({"dkim_selector": "pm key"}, {"server_token": "t"}, "A DKIM selector is letters, digits and hyphens"),
    ({"esp": "mystery"}, {}, "Choose one of the listed ESPs."),
    ({}, {"server_token": ""}, "Fill in the Server API token of your Postmark account."),
    ({}, None, "Fill in the credentials of your Postmark account."),
])
def test_bad_domain_settings_are_refused_and_nothing_is_written(tenant, values, credentials, message):
    full = {"domain": "acme.example", "esp": "postmark", "dkim_selector": "pm", "dkim_value": "", **values}
    with pytest.raises(ServiceError) as refused:
        sending_domain_save(tenant=tenant, values=full, credentials=credentials, by="o")
    assert refused.value.message.startswith(message)
    assert not SendingDomain.objects.for_tenant(tenant).exists()
    assert not Event.objects.for_tenant(tenant).filter(type__startswith="store.sending_domain").exists()


def test_changing_the_domain_unverifies_it(tenant, dns_server):
    add(tenant)
    publish_all(dns_server)
    sending_domain_check(tenant=tenant, by="o")
    add(tenant, domain="mail.acme.example")
    assert (row(tenant).state, row(tenant).verified_at, row(tenant).check_results) == ("unverified", None, {})


def test_the_gate_reason_for_an_unverified_sender(tenant, settings, dns_server):
    tenant.sender_email = "hello@acme.example"
    settings.SENDING_DOMAIN_REQUIRED = False
    assert unverified_sender_reason(tenant, set()) == ""
    settings.SENDING_DOMAIN_REQUIRED = True
    assert unverified_sender_reason(tenant, verified_domains({tenant.pk})[tenant.pk]).startswith(
        "sending domain not verified: acme.example (the sender address's)")
    add(tenant)
    publish_all(dns_server)
    sending_domain_check(tenant=tenant, by="o")
    assert verified_domains({tenant.pk}) == {tenant.pk: {"acme.example"}}
    assert unverified_sender_reason(tenant, {"acme.example"}) == ""
    tenant.sender_email = "hello@news.acme.example"  # a subdomain aligns
    assert unverified_sender_reason(tenant, {"acme.example"}) == ""
    tenant.sender_email = ""  # the platform's own address
    assert unverified_sender_reason(tenant, set()) == ""
