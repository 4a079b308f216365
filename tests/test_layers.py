"""The layers of ARCHITECTURE.md, checked as CI checks them: `lint-imports` with the contract in
pyproject.toml passes on the tree, and fails on a deliberate upward import, even one hidden inside a
function."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.layout import ROOT, project_packages

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree_copy(tmp_path) -> Path:
    """The project's packages and pyproject.toml, copied: a place to break the rule without touching the tree."""
    for package in project_packages():
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "*.json", "*.yaml"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_every_project_package_is_in_the_contract():
    contract = (ROOT / "pyproject.toml").read_text()
    for package in project_packages():
        assert f'"{package}"' in contract, f"{package} is not in the import-linter contract"


def test_an_upward_import_inside_a_function_breaks_the_build(tree_copy):
    assert lint_imports(tree_copy).returncode == 0
    clock = tree_copy / "lifecycle" / "clock.py"
    clock.write_text(clock.read_text() + "\n\ndef _upward():\n    from journeys.models import Journey\n\n    return Journey\n")

    result = lint_imports(tree_copy)

    assert result.returncode == 1
    assert "BROKEN" in result.stdout and "lifecycle.clock -> journeys.models" in result.stdout


def test_an_app_importing_its_sibling_breaks_the_build(tree_copy):
    services = tree_copy / "feedback" / "selectors.py"
    services.write_text(services.read_text() + "\nimport referrals.models  # noqa\n")

    result = lint_imports(tree_copy)

    assert result.returncode == 1
    assert "feedback.selectors -> referrals.models" in result.stdout
