"""The wheel carries everything `momo-gateway migrate` needs, and building it leaves the checkout
as it was.

Installed from a wheel there is no checkout beside the app package, so the Alembic scripts travel
inside it as app/migrations and app/migrate.py finds them there. The checkout keeps them at the
top level (alembic.ini, editable installs, the Docker image's source tree).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BYTECODE = shutil.ignore_patterns("__pycache__", "*.py[cod]")


@dataclass(frozen=True)
class Wheel:
    path: Path
    names: frozenset[str]


def _build_wheel(source: Path, destination: Path) -> Wheel:
    # Without build isolation when the backend is at hand (the dev extra has it): no download of
    # hatchling into a throwaway environment, so a few seconds instead of a network round trip.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    result = subprocess.run(  # noqa: S603 - this interpreter's pip, fixed arguments
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            *isolation,
            "--wheel-dir",
            str(destination),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = destination.glob("momo_gateway-*.whl")
    with zipfile.ZipFile(path) as archive:
        return Wheel(path, frozenset(archive.namelist()))


@dataclass(frozen=True)
class CheckoutBuild:
    wheel: Wheel
    build_directory_created: bool


@pytest.fixture(scope="session")
def checkout_build(tmp_path_factory: pytest.TempPathFactory) -> CheckoutBuild:
    """The wheel of this checkout, built once per session the way `pip install .` builds it."""
    had_build_directory = (ROOT / "build").exists()
    wheel = _build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))
    created = not had_build_directory and (ROOT / "build").exists()
    return CheckoutBuild(wheel, created)


@pytest.fixture(scope="session")
def wheel(checkout_build: CheckoutBuild) -> Wheel:
    return checkout_build.wheel


def _top_level(names: frozenset[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names}


def _bytecode(names: frozenset[str]) -> list[str]:
    return sorted(
        name for name in names if "__pycache__" in name or name.endswith((".pyc", ".pyo"))
    )


def test_wheel_holds_the_app_package_alone(wheel: Wheel) -> None:
    """Nothing else lands loose in site-packages (no migrations/, tests/ or bench/ package)."""
    top_level = _top_level(wheel.names)
    dist_info = [name for name in top_level if name.endswith(".dist-info")]

    assert len(dist_info) == 1
    assert dist_info[0].startswith("momo_gateway-")
    assert top_level == {"app", dist_info[0]}


def test_wheel_ships_the_migrations_inside_the_package(wheel: Wheel) -> None:
    versions = sorted(path.name for path in (ROOT / "migrations" / "versions").glob("*.py"))

    assert versions, "the checkout has migration scripts"
    assert "app/migrations/env.py" in wheel.names
    assert "app/migrations/script.py.mako" in wheel.names
    for name in versions:
        assert f"app/migrations/versions/{name}" in wheel.names


def test_wheel_ships_every_file_of_the_app_package(wheel: Wheel) -> None:
    """Data beside the code (py.typed today) ships without a list of it to keep up to date."""
    in_checkout = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "app").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }

    assert "app/py.typed" in wheel.names
    assert in_checkout - wheel.names == set()


def test_wheel_has_no_bytecode(wheel: Wheel) -> None:
    assert _bytecode(wheel.names) == []


def test_wheel_keeps_the_console_script(wheel: Wheel) -> None:
    (entry_points,) = [name for name in wheel.names if name.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel.path) as archive:
        text = archive.read(entry_points).decode()

    assert "momo-gateway = app.cli:main" in text


def test_building_leaves_no_build_directory_in_the_checkout(checkout_build: CheckoutBuild) -> None:
    assert not checkout_build.build_directory_created


def test_wheel_ships_data_files_and_never_bytecode_from_any_tree(tmp_path: Path) -> None:
    """A tree with no .gitignore (an unpacked sdist, a copy): files added to the package ship,
    stray bytecode does not."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    for name in ("app", "migrations"):
        shutil.copytree(ROOT / name, tree / name, ignore=BYTECODE)
    added = ["app/static/probe.css", "app/templates/probe.html"]
    stray = ["app/__pycache__/cli.cpython-311.pyc", "migrations/versions/__pycache__/x.pyc"]
    for name in [*added, *stray, "app/leftover.pyc"]:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("probe\n")

    wheel = _build_wheel(tree, tmp_path / "dist")

    assert set(added) <= wheel.names
    assert _bytecode(wheel.names) == []
    assert {name for name in _top_level(wheel.names) if not name.endswith(".dist-info")} == {"app"}


def test_migrations_run_from_the_extracted_wheel(wheel: Wheel, tmp_path: Path) -> None:
    """The installed layout, not the checkout: app is imported from the unpacked wheel and the
    scripts come from its app/migrations."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel.path) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = tmp_path / "wheel.db"
    script = (
        "import sys, app, app.migrate\n"
        "print(app.__file__)\n"
        "print(app.migrate.MIGRATIONS_DIR)\n"
        "app.migrate.upgrade(sys.argv[1])\n"
    )

    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", script, f"sqlite+aiosqlite:///{database}"],
        cwd=elsewhere,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    package_file, migrations_dir = result.stdout.splitlines()[:2]
    assert Path(package_file) == site / "app" / "__init__.py"
    assert Path(migrations_dir) == site / "app" / "migrations"
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert "payments" in tables
    assert revision
