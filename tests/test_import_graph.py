"""Imports run downward: ``ml`` never imports Django or the apps, and no app imports the staff dashboard.

The graph is read from the source with :mod:`ast` (every ``import`` and ``from ... import``, including those inside
functions), so a lazy import cannot slip past it.
"""

from __future__ import annotations

import ast
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
