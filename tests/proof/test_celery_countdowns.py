"""No Celery call anywhere waits in the broker for more than 300 s (issue 8, item 3).

A long eta or countdown is held in a worker's memory, and Redis redelivers it to another worker
once its visibility timeout passes: a journey wait belongs in PostgreSQL (Delivery.due_at), never
in the broker. This test reads every Python file of the project (the apps, the tests, the
benchmarks) and fails on any apply_async / retry / signature / send_task / subtask / s / si call
with an eta, or with a countdown it cannot prove to be at most 300 s. A countdown is bounded when
it is a number, a module constant, or min(...) of something bounded. Anything else must be listed
in ALLOWED with the reason it is safe.
"""

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_SECONDS = 300
CELERY_CALLS = {"apply_async", "retry", "signature", "send_task", "subtask", "s", "si"}
SKIP_DIRS = {".venv", "node_modules", ".git", "var", "__pycache__", "build", "dist", ".hypothesis"}
# (path relative to the project, line) -> why that call is safe. Empty: nothing needs an exception.
ALLOWED: dict[tuple[str, int], str] = {}


def project_sources() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.suffix == ".py":
                found.append(path)
            elif path.parent.name == "bench" and not path.suffix:
                # Benchmarks are executable Python scripts without a suffix.
                with path.open("rb") as handle:
                    first = handle.readline()
                if first.startswith(b"#!") and b"python" in first:
                    found.append(path)
    return sorted(found)


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    return {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def bound(node: ast.expr, constants: dict[str, ast.expr], depth: int = 0) -> float | None:
    """The largest value `node` can take, when it can be told from the source; else None."""
    if depth > 10:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in constants:
        return bound(constants[node.id], constants, depth + 1)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "min" and node.args:
        bounds = [bound(arg, constants, depth + 1) for arg in node.args if not isinstance(arg, ast.Starred)]
        known = [b for b in bounds if b is not None]
        return min(known) if known else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = bound(node.left, constants, depth + 1), bound(node.right, constants, depth + 1)
        if left is not None and right is not None and left >= 0 and right >= 0:
            return left + right if isinstance(node.op, ast.Add) else left * right
    return None


def _options(call: ast.Call) -> list[ast.keyword]:
    """The call's keywords, and those of an options={...} dict literal (signature(..., options=...))."""
    found = list(call.keywords)
    for keyword in call.keywords:
        if keyword.arg == "options" and isinstance(keyword.value, ast.Dict):
            found += [ast.keyword(arg=k.value, value=v) for k, v in zip(keyword.value.keys, keyword.value.values,
                                                                        strict=True)
                      if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return found


def violations(source: str, name: str) -> list[str]:
    tree = ast.parse(source, filename=name)
    constants = _constants(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in CELERY_CALLS):
            continue
        where = f"{name}:{node.lineno} .{node.func.attr}()"
        for keyword in _options(node):
            if keyword.arg is None:
                found.append(f"{where} passes **{ast.unparse(keyword.value)}: its countdown/eta cannot be checked")
            elif keyword.arg == "eta":
                found.append(f"{where} sets eta={ast.unparse(keyword.value)}: keep due times in the database")
            elif keyword.arg == "countdown":
                limit = bound(keyword.value, constants)
                if limit is None:
                    found.append(f"{where} countdown={ast.unparse(keyword.value)} has no bound the source shows")
                elif limit > MAX_SECONDS:
                    found.append(f"{where} countdown={ast.unparse(keyword.value)} can reach {limit:g} s "
                                 f"(over {MAX_SECONDS} s)")
    return found


def test_the_scanner_catches_long_unbounded_and_hidden_waits():
    source = """
LONG = 600
SHORT = 30
task.apply_async(args=[1], countdown=LONG)
task.apply_async(args=[1], countdown=min(3600, SHORT * 2 ** n))
self.retry(countdown=backoff(n))
task.signature((1,), options={"eta": when})
task.apply_async(**options)
task.apply_async(args=[1], countdown=min(300, SHORT * 2 ** n))
task.s(1).apply_async(countdown=SHORT * 4)
self.retry(exc=exc)
"""
    assert violations(source, "example.py") == [
        "example.py:4 .apply_async() countdown=LONG can reach 600 s (over 300 s)",
        "example.py:5 .apply_async() countdown=min(3600, SHORT * 2 ** n) can reach 3600 s (over 300 s)",
        "example.py:6 .retry() countdown=backoff(n) has no bound the source shows",
        "example.py:7 .signature() sets eta=when: keep due times in the database",
        "example.py:8 .apply_async() passes **options: its countdown/eta cannot be checked",
    ]


def test_no_celery_call_in_the_project_waits_over_300_seconds():
    sources = project_sources()
    names = {str(path.relative_to(ROOT)) for path in sources}
    # The scan reaches every app, the tests and the benchmarks (a scan of nothing proves nothing).
    assert {"journeys/tasks.py", "feedback/tasks.py", "lifecycle/tasks.py", "bench/dispatch"} <= names
    found = []
    for path in sources:
        relative = str(path.relative_to(ROOT))
        for problem in violations(path.read_text(encoding="utf-8"), relative):
            line = int(problem.split(":")[1].split()[0])
            if (relative, line) not in ALLOWED:
                found.append(problem)
    assert found == []
