"""The project's own packages, read from the settings, for tests that walk the source tree: a new
app is checked by every such test as soon as it is installed, never silently skipped."""

from pathlib import Path

from django.apps import apps
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def project_apps() -> list[str]:
    """Installed apps whose code lives in this repository (lifecycle, journeys, …, workspace, demo)."""
    return [config.name for config in apps.get_app_configs() if Path(config.path).resolve().parent == ROOT]


def project_packages() -> list[str]:
    """The apps and the wiring package (config) that names them."""
    return [settings.ROOT_URLCONF.split(".")[0], *project_apps()]
