"""The README and .env.example stay true: every variable the settings read is documented."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings_variables() -> set[str]:
    source = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'env(?:_bool|_list)?\("([A-Z][A-Z0-9_]+)"', source))
    names |= set(re.findall(r'os\.environ(?:\.get)?\(?\[?"([A-Z][A-Z0-9_]+)"', source))
    return names - {"DJANGO_SETTINGS_MODULE"}


def test_every_setting_variable_is_in_the_readme_and_env_example():
    names = settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL"} <= names
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
    assert sorted(n for n in names if not re.search(rf"^{n}=", example, re.M)) == []


def test_readme_names_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_api_route_has_a_curl_example():
    from config.urls import api_v1

    readme = (ROOT / "README.md").read_text()
    for pattern in api_v1:
        literal = re.sub(r"\(\?P<[a-z_]+>\[\^/\]\+\)", "X", pattern.pattern.regex.pattern)
        literal = literal.strip("^$").replace("/?", "").replace("X", "[^ /\"]+")
        assert re.search(r"\$API/" + literal + r"[\s\"?]", readme), f"no curl example for {pattern.name}"


def test_sizing_table_names_the_command_behind_each_figure():
    """Each measured row of README's sizing table says how it was measured: a benchmark that exists, with
    options it accepts, so anyone can run it again."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Sizing", 1)[1].split("\n#", 1)[0]
    commands = re.findall(r"^\|[^|\n]*\| `(bench/[^`]+)` \|", section, re.M)
    assert len(commands) >= 4, commands
    for command in commands:
        script, *options = command.split()
        path = ROOT / script
        assert path.is_file() and os.access(path, os.X_OK), f"{script} is not an executable benchmark"
        source = path.read_text()
        for option in (o for o in options if o.startswith("--")):
            assert f'"{option}"' in source, f"{script} takes no {option}"
