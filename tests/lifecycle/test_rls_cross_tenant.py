"""The API's cross-tenant matrix (test_cross_tenant.py) again, with the application running as
`lifecycle_app` under row-level security, as in production (tests/rls_support.py)."""

import pytest

from tests.lifecycle.test_cross_tenant import *  # noqa: F403 - the same tests, collected here too

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("app_role")]
