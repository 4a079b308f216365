"""connect_store prints the webhook URL on the address the server is really reached at."""

import json

from django.core.management import call_command

from lifecycle.addresses import webhook_url
from lifecycle.models import StoreConnection


def test_beside_make_run_on_another_port_the_webhook_url_names_that_port(tenant, capsys, settings, tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"  # the embedded default: nothing configured
    settings.VAR_DIR = tmp_path
    (tmp_path / "public_base_url").write_text("http://127.0.0.1:8123\n")  # PORT=8123 make run wrote it

    call_command("connect_store", "acme", "woocommerce", "https://shop.example.com", "--secret", "wc-secret-1")
    captured = capsys.readouterr()
    printed = json.loads(captured.out)

    conn = StoreConnection.objects.for_tenant(tenant).get(public_id=printed["connection"])
    assert printed["webhook_url"] == f"http://127.0.0.1:8123/webhooks/woocommerce/{conn.public_id}"
    # The same URL the workspace's store settings show on that server.
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8123"
    assert webhook_url(conn) == printed["webhook_url"]
    # And it says that a storefront cannot reach this machine's loopback address.
    assert "127.0.0.1 is this machine" in captured.err and "PUBLIC_BASE_URL" in captured.err


def test_a_configured_public_base_url_wins_over_the_recorded_address(tenant, capsys, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://hooks.example.com/")
    settings.PUBLIC_BASE_URL = "https://hooks.example.com"
    settings.VAR_DIR = tmp_path
    (tmp_path / "public_base_url").write_text("http://127.0.0.1:8123\n")

    call_command("connect_store", "acme", "shopify", "acme.myshopify.com", "--secret", "shpss_123456")
    captured = capsys.readouterr()

    assert json.loads(captured.out)["webhook_url"] == "https://hooks.example.com/webhooks/shopify"
    assert captured.err == ""


def test_with_no_server_recorded_the_embedded_default_is_printed(tenant, capsys, settings, tmp_path, monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    settings.VAR_DIR = tmp_path  # no public_base_url file: make run never ran here

    call_command("connect_store", "acme", "shopify", "acme.myshopify.com", "--secret", "shpss_123456")

    assert json.loads(capsys.readouterr().out)["webhook_url"] == "http://127.0.0.1:8000/webhooks/shopify"
