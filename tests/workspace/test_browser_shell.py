"""The workspace in a real browser: sign in, land on the store, switch stores from the menu."""

import pytest

from lifecycle.models import Membership
from tests.browser import screenshot, sign_in

from .conftest import PASSWORD, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_sign_in_land_on_the_store_and_switch_to_another(browser, live_server, tenant, other_tenant):
    user = make_user("both", tenant, Membership.Role.OWNER)
    Membership.objects.create(user=user, tenant=other_tenant, role=Membership.Role.VIEWER)

    page = sign_in(browser, live_server, "both", PASSWORD)
    assert page.url == f"{live_server.url}/app/"
    page.click("main >> text=Acme Coffee")
    assert page.url == f"{live_server.url}/app/acme/"
    assert page.inner_text("#whoami") == "both · owner"

    page.click("#store-switcher summary")
    page.click("#store-switcher >> text=Globex Tea")
    assert page.url == f"{live_server.url}/app/globex/"
    assert page.inner_text("#whoami") == "both · viewer"
    screenshot(page, "workspace-home")
