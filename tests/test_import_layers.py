"""The layers of ``app/`` import downward only.

The ground floor (settings, phone numbers, money, the database plumbing, the shared vocabulary,
errors and the small helpers beside them) imports nothing else from ``app``; the providers import
the ground floor and each other, never the services that use them. Checked on the source, every
import included (inside functions and ``TYPE_CHECKING`` blocks too), so it cannot drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

GROUND_FLOOR = frozenset(
    {
        "app.callback_tokens",
        "app.config",
        "app.db",
        "app.errors",
        "app.identifiers",
        "app.log_config",
        "app.metrics",
        "app.money",
        "app.phone",
        "app.vocabulary",
    }
)
# Beside the ground floor: stores that only need the database plumbing.
ALSO_LOW = {"app.idempotency": GROUND_FLOOR}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_imports(path: Path) -> set[str]:
    """Every ``app…`` module ``path`` imports, resolved to the module (``from app.x import y``
    is ``app.x``, or ``app.x.y`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("app"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if is_module(candidate) else node.module)
    return found


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (APP.parent / relative).with_suffix(".py").exists() or (
        APP.parent / relative / "__init__.py"
    ).exists()


def within(name: str, allowed: frozenset[str] | set[str]) -> bool:
    return name in allowed or any(name.startswith(prefix + ".") for prefix in allowed)


SOURCES = sorted(APP.rglob("*.py"))


@pytest.mark.parametrize("module", sorted(GROUND_FLOOR | set(ALSO_LOW)))
def test_the_ground_floor_imports_only_the_ground_floor(module):
    path = next(p for p in SOURCES if module_name(p) == module)
    allowed = ALSO_LOW.get(module, GROUND_FLOOR)
    upward = {name for name in app_imports(path) if not within(name, allowed) and name != module}
    assert upward == set(), f"{module} imports {sorted(upward)}"


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if module_name(p).startswith("app.providers")], ids=str
)
def test_providers_import_the_ground_floor_and_each_other_only(path):
    allowed = GROUND_FLOOR | {"app.providers"}
    upward = {name for name in app_imports(path) if not within(name, allowed)}
    assert upward == set(), f"{module_name(path)} imports {sorted(upward)}"


def test_the_check_sees_an_upward_import(tmp_path):
    # The checker itself: an import of the payments package from a ground-floor file is caught.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from app.payments.domain import PaymentStatus\n")
    assert not within(next(iter(app_imports(probe))), GROUND_FLOOR)
