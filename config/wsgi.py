import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# The web process serves the outside world: its connections assume DATABASE_RLS_ROLE (lifecycle/rls.py).
from lifecycle.rls import serve_as_role  # noqa: E402 - needs the settings get_wsgi_application loaded

serve_as_role()
