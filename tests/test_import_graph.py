"""Imports run downward: ``ml`` never imports Django or the apps, no app imports the staff dashboard, and inside
``ml`` the commands (``python -m ml.X``) sit on top of the library modules: no command imports another command,
and the modules import each other without a cycle.

The graph is read from the source with :mod:`ast` (every ``import`` and ``from ... import``, including those inside
functions), so a lazy import cannot slip past it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("feedmood", "emotion", "recommender")
DASHBOARD = "dashboard"
#: Outside the dashboard itself, only the root URLconf may import it (it mounts ``dashboard.urls``).
DASHBOARD_MOUNTS = {"config.urls"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against its package)."""
    package = package or package_of(path)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", sources("ml"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ml_never_imports_django_or_the_apps(path: Path) -> None:
    forbidden = ("django", "rest_framework", "celery", *APPS)
    bad = sorted(n for n in imported_modules(path) if any(is_within(n, f) for f in forbidden))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: ml/ must stay free of Django and the apps"


def test_no_app_imports_the_dashboard() -> None:
    """The dashboard is the top app: feedmood, emotion and recommender never import it (not even lazily), and
    outside ``dashboard/`` only ``config.urls`` does."""
    importers = {
        module_name(path): sorted(n for n in imported_modules(path) if is_within(n, DASHBOARD))
        for package in (*APPS, "config", "ml")
        for path in sources(package)
    }
    importers = {module: names for module, names in importers.items() if names}
    assert set(importers) <= DASHBOARD_MOUNTS, f"only {sorted(DASHBOARD_MOUNTS)} may import the dashboard: {importers}"
    assert sources(DASHBOARD), "the dashboard app has no sources"


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checks above are only as good as the reader: it must see imports inside functions and relative ones."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    from django.conf import settings\n    from . import runtime\n    from .models import cnn\n"
    )
    names = imported_modules(probe, package="ml")
    assert {"ml.models", "ml.models.cnn"} <= names
    assert {"django.conf", "django.conf.settings", "ml", "ml.runtime"} <= names


# --------------------------------------------------------------------------- inside ml/


def ml_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sources("ml")}


def is_command(path: Path) -> bool:
    """A command is a module that runs as ``python -m ml.X``: it has an ``if __name__ == "__main__":`` block."""
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = {getattr(n, "id", None) for n in (node.test.left, *node.test.comparators)}
            values = {getattr(n, "value", None) for n in (node.test.left, *node.test.comparators)}
            if "__name__" in names and "__main__" in values:
                return True
    return False


def ml_graph() -> dict[str, set[str]]:
    """{ml module: the ml modules it imports}, top-level and function-level imports alike."""
    modules = ml_modules()
    return {name: {n for n in imported_modules(path) if n in modules and n != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_ml_commands_are_the_documented_ones() -> None:
    """The graph checks below know which modules are commands; shipped cards record these names."""
    commands = {name for name, path in ml_modules().items() if is_command(path)}
    assert {"ml.train", "ml.evaluate", "ml.export", "ml.calibrate", "ml.selective_flip", "ml.tta_mode"} <= commands


def test_no_ml_command_imports_another_command() -> None:
    modules = ml_modules()
    commands = {name for name, path in modules.items() if is_command(path)}
    graph = ml_graph()
    offenders = {name: sorted(graph[name] & commands) for name in sorted(commands) if graph[name] & commands}
    assert not offenders, f"commands import commands (move what they share into a library module): {offenders}"


def test_no_library_module_imports_a_command() -> None:
    modules = ml_modules()
    commands = {name for name, path in modules.items() if is_command(path)}
    graph = ml_graph()
    offenders = {name: sorted(graph[name] & commands) for name in sorted(set(modules) - commands)}
    assert not {m: names for m, names in offenders.items() if names}


def test_ml_has_no_import_cycle() -> None:
    assert find_cycle(ml_graph()) is None, f"import cycle in ml/: {' -> '.join(find_cycle(ml_graph()) or [])}"


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_the_model_card_schema_needs_only_the_standard_library() -> None:
    """ml.card is read by the service, the commands and the tests: it must not pull in numpy or TensorFlow."""
    code = "import sys, ml.card; print(sorted(m for m in ('numpy', 'tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
