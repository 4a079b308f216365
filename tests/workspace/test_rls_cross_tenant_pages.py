"""The workspace's cross-tenant matrix (test_cross_tenant_pages.py) again, with the application
running as `lifecycle_app` under row-level security, as in production (tests/rls_support.py)."""

import pytest

from tests.workspace.test_cross_tenant_pages import *  # noqa: F403 - the same tests, collected here too

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("app_role")]
