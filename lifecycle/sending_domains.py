"""A store's own sending domain: the SPF, DKIM and DMARC records it publishes, the check that finds them in
DNS (dnspython), and the store's own ESP account, if it has one, for anymail to send through.

- The records: SPF names the ESP's servers (its `include:`), DKIM is the key the ESP gave the store (a TXT
  value, or a host to point a CNAME at), DMARC is a policy for the domain. All three found: verified.
- The check asks the name servers of SENDING_DNS_NAMESERVERS (else the system's) for each record. Where DNS
  cannot be reached (no network, no resolver, SENDING_DNS_CHECK off) the check is *skipped*: nothing about
  the domain changes and the page says why.
- Sending (journeys/schedule.py): with SENDING_DOMAIN_REQUIRED (production), an email from an address on a
  domain the store has not verified is held, with the reason in the explain view.
- The store's ESP credentials are encrypted at rest (lifecycle/crypto.py) and read back only to open the
  store's anymail connection (`esp_connection`); the audit log says "(changed)", never the value.
"""

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.resolver
from django.conf import settings
from django.db import transaction

from . import clock, crypto
from .changes import field_changes
from .errors import ServiceError
from .models import SendingDomain, Tenant
from .timeline import event_append


@dataclasses.dataclass(frozen=True)
class Esp:
    label: str
    backend: str  # the anymail EmailBackend
    credentials: tuple[tuple[str, str], ...]  # (anymail setting, label) the store fills in
    spf_include: str
    max_tags: int = 10  # anymail refuses a message with more tags than the ESP keeps (Postmark: one)


# The ESPs a store may bring its own account of: anymail backends that need nothing but an HTTP API key.
ESPS = {
    "postmark": Esp("Postmark", "anymail.backends.postmark.EmailBackend", (("server_token", "Server API token"),),
                    "spf.mtasv.net", max_tags=1),
    "sendgrid": Esp("SendGrid", "anymail.backends.sendgrid.EmailBackend", (("api_key", "API key"),), "sendgrid.net"),
    "mailgun": Esp("Mailgun", "anymail.backends.mailgun.EmailBackend", (("api_key", "API key"),), "mailgun.org"),
    "sparkpost": Esp("SparkPost", "anymail.backends.sparkpost.EmailBackend", (("api_key", "API key"),),
                     "sparkpostmail.com"),
    "brevo": Esp("Brevo", "anymail.backends.brevo.EmailBackend", (("api_key", "API key"),), "spf.brevo.com"),
}
DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOST = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$", re.I)
FIELDS = ("domain", "dkim_selector", "dkim_value", "esp")


# --- the records to publish ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    key: str  # spf | dkim | dmarc
    type: str  # TXT | CNAME
    name: str
    value: str


def spf_include(row: SendingDomain) -> str:
    return ESPS[row.esp].spf_include if row.esp in ESPS else settings.SENDING_SPF_INCLUDE


def dkim_is_cname(value: str) -> bool:
    return bool(HOST.match(value.strip())) and "=" not in value


def records(row: SendingDomain, *, report_to: str = "") -> list[Record]:
    """What the store publishes in its DNS, by the ESP it sends through."""
    include = spf_include(row)
    spf = f"v=spf1 include:{include} ~all" if include else "v=spf1 include:<your ESP's SPF domain> ~all"
    dkim_name = f"{row.dkim_selector}._domainkey.{row.domain}"
    dkim_value = row.dkim_value.strip() or "(the DKIM key your ESP shows when you add the domain there)"
    dmarc = "v=DMARC1; p=none" + (f"; rua=mailto:{report_to}" if report_to else "")
    return [Record("spf", "TXT", row.domain, spf),
            Record("dkim", "CNAME" if dkim_is_cname(dkim_value) else "TXT", dkim_name, dkim_value),
            Record("dmarc", "TXT", f"_dmarc.{row.domain}", dmarc)]


# --- the check ------------------------------------------------------------------------------


class DnsUnreachable(Exception):
    """No answer from any name server: the check cannot say anything about the records."""


Lookup = Callable[[str, str], list[str]]


def dns_lookup(name: str, rdtype: str) -> list[str]:
    """The record's values (TXT strings joined, a CNAME's target), [] when there is none; DnsUnreachable
    when no name server answers. Asks SENDING_DNS_NAMESERVERS, else the system's."""
    try:
        resolver = dns.resolver.Resolver(configure=not settings.SENDING_DNS_NAMESERVERS)
    except dns.resolver.NoResolverConfiguration as exc:
        raise DnsUnreachable("this server has no DNS resolver configured") from exc
    if settings.SENDING_DNS_NAMESERVERS:
        servers = []
        for entry in settings.SENDING_DNS_NAMESERVERS:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            servers.append(host)
            if port:
                resolver.port = int(port)
        resolver.nameservers = servers
    resolver.lifetime = resolver.timeout = settings.SENDING_DNS_TIMEOUT
    try:
        answer = resolver.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, OSError) as exc:
        raise DnsUnreachable(f"no name server answered for {name}") from exc
    if answer.rrset is None:
        return []
    if rdtype == "TXT":
        return [b"".join(r.strings).decode(errors="replace") for r in answer.rrset]
    return [r.to_text() for r in answer.rrset]


def _spf_result(row: SendingDomain, lookup: Lookup) -> dict[str, Any]:
    found = [v for v in lookup(row.domain, "TXT") if v.lower().startswith("v=spf1")]
    include = spf_include(row)
    if not found:
        return {"ok": False, "found": "", "message": f"No SPF record (TXT starting v=spf1) at {row.domain}."}
    if len(found) > 1:
        return {"ok": False, "found": " | ".join(found),
                "message": "More than one SPF record: mailbox providers ignore all of them. Merge them into one."}
    if include and f"include:{include}".lower() not in found[0].lower().split():
        return {"ok": False, "found": found[0], "message": f"The SPF record does not include {include}: add "
                                                           f"include:{include} before its ~all."}
    return {"ok": True, "found": found[0], "message": "SPF found."}


def _p_value(text: str) -> str:
    match = re.search(r"(?:^|;)\s*p=([^;]*)", text.replace(" ", "").replace('"', ""))
    return match.group(1) if match else ""


def _dkim_result(row: SendingDomain, lookup: Lookup) -> dict[str, Any]:
    name = f"{row.dkim_selector}._domainkey.{row.domain}"
    expected = row.dkim_value.strip()
    if not expected:
        return {"ok": False, "found": "", "message": "Paste the DKIM record your ESP gave you, then check again."}
    if dkim_is_cname(expected):
        found = lookup(name, "CNAME")
        targets = [f.rstrip(".").lower() for f in found]
        ok = expected.rstrip(".").lower() in targets
        return {"ok": ok, "found": " | ".join(found),
                "message": "DKIM found." if ok else f"No CNAME at {name} pointing to {expected.rstrip('.')}."}
    found = [v for v in lookup(name, "TXT") if "p=" in v]
    ok = any(_p_value(v) and _p_value(v) == _p_value(expected) for v in found)
    return {"ok": ok, "found": " | ".join(found),
            "message": "DKIM found." if ok else (f"The DKIM key at {name} is not the one your ESP gave." if found
                                                 else f"No DKIM record (TXT with p=…) at {name}.")}


def _dmarc_result(row: SendingDomain, lookup: Lookup) -> dict[str, Any]:
    found = [v for v in lookup(f"_dmarc.{row.domain}", "TXT") if v.upper().startswith("V=DMARC1")]
    if not found:
        return {"ok": False, "found": "", "message": f"No DMARC record (TXT starting v=DMARC1) at _dmarc.{row.domain}."}
    return {"ok": True, "found": found[0], "message": "DMARC found."}


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    skipped: str  # why the check did not run; "" when it did
    results: dict[str, dict[str, Any]]
    verified: bool


def sending_domain_check(*, tenant: Tenant, by: str, lookup: Lookup | None = None) -> CheckOutcome:
    """Look the three records up and record the verdict (a `store.sending_domain_checked` event). Skipped, and
    nothing written, when DNS cannot be reached. `lookup` replaces the DNS query (tests; default dns_lookup)."""
    row = SendingDomain.objects.for_tenant(tenant).first()
    if row is None:
        raise ServiceError("domain.missing", "Add a sending domain first.")
    if not settings.SENDING_DNS_CHECK:
        return CheckOutcome("DNS checks are turned off on this server (SENDING_DNS_CHECK=0): the check is skipped.",
                            {}, row.state == SendingDomain.State.VERIFIED)
    lookup = lookup or dns_lookup
    try:  # the network first, outside the transaction: no lock is held while DNS is slow
        results = {"spf": _spf_result(row, lookup), "dkim": _dkim_result(row, lookup),
                   "dmarc": _dmarc_result(row, lookup)}
    except DnsUnreachable as exc:
        return CheckOutcome(f"DNS could not be reached ({exc}), so nothing was checked and nothing changed. "
                            "Is this server offline? Try again later.", {}, row.state == SendingDomain.State.VERIFIED)
    verified = all(r["ok"] for r in results.values())
    now = clock.now()
    with transaction.atomic():
        locked = SendingDomain.objects.for_tenant(tenant).select_for_update().filter(pk=row.pk).first()
        if locked is None or (locked.domain, locked.dkim_selector, locked.dkim_value, locked.esp) != (
                row.domain, row.dkim_selector, row.dkim_value, row.esp):
            raise ServiceError("domain.changed", "The sending domain changed while it was being checked: check again.")
        before = locked.state
        locked.state = SendingDomain.State.VERIFIED if verified else (
            SendingDomain.State.FAILING if before == SendingDomain.State.VERIFIED else SendingDomain.State.UNVERIFIED)
        locked.checked_at, locked.check_results = now, results
        if verified and before != SendingDomain.State.VERIFIED:
            locked.verified_at = now
        locked.save(update_fields=["state", "checked_at", "check_results", "verified_at", "updated_at"])
        event_append(tenant=tenant, type="store.sending_domain_checked", occurred_at=now,
                     data={"domain": locked.domain, "changes": {"state": [before, locked.state]},
                           "records": {k: r["ok"] for k, r in results.items()}, "by": by})
    return CheckOutcome("", results, verified)


# --- the store's settings --------------------------------------------------------------------


def domain_clean(raw: str) -> str:
    domain = raw.strip().lower().rstrip(".")
    if domain.startswith(("http://", "https://")) or "@" in domain or "/" in domain:
        raise ServiceError("domain.invalid", f"Write the domain alone, such as mail.acme.com, not {raw.strip()!r}.",
                           {"domain": ["domain alone"]})
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ServiceError("domain.invalid", f"{raw.strip()!r} is not a domain name.", {"domain": ["invalid"]}) from exc
    if not DOMAIN.match(domain):
        raise ServiceError("domain.invalid", f"{raw.strip()!r} is not a domain name such as mail.acme.com.",
                           {"domain": ["invalid"]})
    return domain


def sending_domain_save(*, tenant: Tenant, values: dict[str, Any], credentials: dict[str, str] | None,
                        by: str) -> list[str]:
    """Add or change the store's sending domain. `credentials` None keeps the stored ones; {} clears them.
    A change to the domain, its DKIM record or its ESP makes it unverified until checked again. Returns
    the fields that changed ("credentials" among them)."""
    values = {**values, "domain": domain_clean(values["domain"])}
    if not SELECTOR.match(values["dkim_selector"]):
        raise ServiceError("domain.selector", "A DKIM selector is letters, digits and hyphens, such as “lc” or “pm”.",
                           {"dkim_selector": ["invalid"]})
    if values["esp"] and values["esp"] not in ESPS:
        raise ServiceError("domain.esp", "Choose one of the listed ESPs.", {"esp": ["invalid"]})
    if values["esp"] and credentials is not None:
        missing = [label for key, label in ESPS[values["esp"]].credentials if not credentials.get(key)]
        if missing:
            raise ServiceError("domain.credentials", f"Fill in the {', '.join(missing)} of your "
                                                     f"{ESPS[values['esp']].label} account.", {"credentials": missing})
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        row = SendingDomain.objects.for_tenant(tenant).select_for_update().first()
        new = row is None
        row = row or SendingDomain(tenant=tenant, created_at=clock.now())
        if values["esp"] and credentials is None and (new or row.esp != values["esp"] or not row.credentials_encrypted):
            raise ServiceError("domain.credentials", f"Fill in the credentials of your {ESPS[values['esp']].label} "
                                                     "account.", {"credentials": ["required"]})
        changed = [name for name in FIELDS if getattr(row, name) != values[name]]
        encrypted = row.credentials_encrypted
        if not values["esp"]:
            encrypted = ""
        elif credentials is not None:
            keys = [key for key, _label in ESPS[values["esp"]].credentials]
            encrypted = crypto.encrypt(json.dumps({key: credentials[key] for key in keys}))
        credentials_changed = encrypted != row.credentials_encrypted
        if not changed and not credentials_changed:
            return []
        changes = field_changes(row, changed, values)
        if credentials_changed:
            changes["credentials"] = ["(set)" if row.credentials_encrypted else "", "(changed)" if encrypted else ""]
        for name in changed:
            setattr(row, name, values[name])
        row.credentials_encrypted = encrypted
        if set(changed) & {"domain", "dkim_selector", "dkim_value", "esp"}:
            row.state, row.verified_at, row.checked_at, row.check_results = (
                SendingDomain.State.UNVERIFIED, None, None, {})
        row.save()
        event_append(tenant=tenant, type="store.sending_domain_added" if new else "store.sending_domain_changed",
                     occurred_at=clock.now(), data={"domain": row.domain, "changes": changes, "by": by})
    return changed + (["credentials"] if credentials_changed else [])


def sending_domain_remove(*, tenant: Tenant, by: str) -> bool:
    """Forget the store's sending domain and its ESP credentials: it sends through the platform's ESP again."""
    with transaction.atomic():
        row = SendingDomain.objects.for_tenant(tenant).select_for_update().first()
        if row is None:
            return False
        row.delete()
        event_append(tenant=tenant, type="store.sending_domain_removed", occurred_at=clock.now(),
                     data={"domain": row.domain, "by": by})
    return True


# --- sending -------------------------------------------------------------------------------


def address_domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def on_domain(address: str, domain: str) -> bool:
    """Is `address` on `domain` or one of its subdomains (DMARC's relaxed alignment)?"""
    host = address_domain(address)
    return host == domain or host.endswith("." + domain)


def unverified_sender_reason(tenant: Tenant, verified: set[str]) -> str:
    """Why this store may not send now under SENDING_DOMAIN_REQUIRED, or "". `verified`: the store's verified
    domains (read once per batch by the caller). A store without its own address sends as the platform."""
    if not settings.SENDING_DOMAIN_REQUIRED or not tenant.sender_email:
        return ""
    if on_domain(tenant.sender_email, address_domain(settings.DEFAULT_FROM_EMAIL)):
        return ""
    if any(on_domain(tenant.sender_email, domain) for domain in verified):
        return ""
    return (f"sending domain not verified: {address_domain(tenant.sender_email)} (the sender address's) has no "
            "verified SPF, DKIM and DMARC records; an owner publishes them and checks under Settings → Sending domain")


def verified_domains(tenant_ids: set[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {tenant_id: set() for tenant_id in tenant_ids}
    for tenant_id in tenant_ids:
        for domain in SendingDomain.objects.for_tenant(tenant_id).filter(
                state=SendingDomain.State.VERIFIED).values_list("domain", flat=True):
            found[tenant_id].add(domain)
    return found


@dataclasses.dataclass(frozen=True)
class EspConnection:
    """How to reach a store's own ESP account: the anymail backend and its settings (the decrypted
    credentials), and what anymail passes on per message (`esp_extra`)."""

    backend: str
    settings: tuple[tuple[str, str], ...]
    esp_extra: tuple[tuple[str, str], ...] = ()
    max_tags: int = 10


def esp_connection(tenant_id: int) -> EspConnection | None:
    """The store's own ESP account, or None (the platform's EMAIL_BACKEND)."""
    row = SendingDomain.objects.for_tenant(tenant_id).only("esp", "credentials_encrypted", "domain").first()
    if row is None or not row.esp or not row.credentials_encrypted or row.esp not in ESPS:
        return None
    values = json.loads(crypto.decrypt(row.credentials_encrypted))
    extra = (("sender_domain", row.domain),) if row.esp == "mailgun" else ()
    return EspConnection(ESPS[row.esp].backend, tuple(sorted(values.items())), extra, ESPS[row.esp].max_tags)


def sending_domain_for(tenant: Tenant) -> SendingDomain | None:
    return SendingDomain.objects.for_tenant(tenant).first()

