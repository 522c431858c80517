"""requirements.lock, what the Docker image installs, agrees with pyproject.toml.

The image installs the lock alone (``pip install --require-hashes --no-deps``): a dependency added
to pyproject.toml but not to the lock would be missing from the image and from nothing else, so
every test here would pass and the container would fail at its first import. ``make lock``
regenerates the lock; these tests fail until someone runs it.

What "agree" means, checked offline:

- every runtime dependency of pyproject.toml is pinned, at a version its specifier accepts, and so
  are the packages its extras bring (``uvicorn[standard]``), as far as the installed metadata
  tells;
- every pin carries at least one sha256 hash (pip refuses the whole file otherwise);
- every package the lock says it pinned for the project itself (``# via momo-gateway
  (pyproject.toml)``) is still a dependency of pyproject.toml;
- the pins are closed: what each pinned package requires is pinned too (read from the installed
  metadata of that same version);
- the lock was written by the command ``make lock`` runs, so it covers every platform.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
MAKEFILE = ROOT / "Makefile"

# The image is python:3.11-slim (Debian, CPython) on amd64 and arm64.
TARGET_ENVIRONMENTS = [
    {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_machine": machine,
        "python_version": "3.11",
        "python_full_version": "3.11.9",
        "implementation_version": "3.11.9",
        "extra": "",
    }
    for machine in ("x86_64", "aarch64")
]

_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")
_COMPILE_COMMAND = re.compile(r"^#\s+(uv pip compile .*)$", re.MULTILINE)


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: int
    via: frozenset[str]


def parse_lock(text: str) -> dict[str, Pin]:
    """The pins of a ``uv pip compile --generate-hashes`` file, by canonical name."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    pins = {}
    for first, *rest in blocks:
        requirement = Requirement(first.rstrip("\\ "))
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"not a pin: {first}"
        via: set[str] = set()
        for line in rest:
            comment = line.strip().removeprefix("#").strip()
            if line.strip().startswith("#") and comment != "via":
                via.add(comment.removeprefix("via ").strip())
        name = canonicalize_name(requirement.name)
        if name in pins and not _applies(requirement.marker):
            # A universal lock may pin one package twice, under exclusive markers: keep the
            # pin the image installs.
            continue
        pins[name] = Pin(
            name=name,
            version=Version(specifier.version),
            marker=requirement.marker,
            hashes=sum(len(_HASH.findall(line)) for line in [first, *rest]),
            via=frozenset(via),
        )
    return pins


def _applies(marker: Marker | None, **overrides: str) -> bool:
    """Whether a marker holds in the image on either platform."""
    if marker is None:
        return True
    return any(marker.evaluate({**env, **overrides}) for env in TARGET_ENVIRONMENTS)


def _installed_requirements(name: str, version: Version) -> list[Requirement] | None:
    """What that version of ``name`` requires, from the installed metadata; None when another
    version (or none) is installed, since then this environment cannot tell."""
    try:
        if Version(importlib.metadata.version(name)) != version:
            return None
        return [Requirement(line) for line in importlib.metadata.requires(name) or []]
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_pinned(requirement: Requirement, pins: dict[str, Pin], why: str) -> list[str]:
    pin = pins.get(canonicalize_name(requirement.name))
    if pin is None:
        return [f"{requirement.name} ({why}) is not in the lock"]
    if not requirement.specifier.contains(pin.version, prereleases=True):
        return [
            f"{requirement.name} is pinned at {pin.version} in the lock, "
            f"but {why} asks for {requirement.specifier}"
        ]
    return []


def disagreements(pyproject: Path, lock: Path) -> list[str]:
    """Every way the lock fails pyproject.toml's runtime dependencies; empty when they agree."""
    project = tomllib.loads(pyproject.read_text())["project"]
    direct = [Requirement(line) for line in project["dependencies"]]
    pins = parse_lock(lock.read_text())
    problems = []

    for requirement in direct:
        if not _applies(requirement.marker):
            continue
        problems += _check_pinned(requirement, pins, "pyproject.toml")
        pin = pins.get(canonicalize_name(requirement.name))
        for extra in sorted(requirement.extras):
            required = _installed_requirements(requirement.name, pin.version) if pin else None
            for needed in required or []:
                brought = _applies(needed.marker, extra=extra) and not _applies(needed.marker)
                if brought:
                    why = f"{requirement.name}[{extra}]"
                    problems += _check_pinned(needed, pins, why)

    for pin in pins.values():
        if pin.hashes == 0:
            problems.append(f"{pin.name}=={pin.version} has no --hash=sha256: in the lock")

    direct_names = {canonicalize_name(requirement.name) for requirement in direct}
    ours = f"{project['name']} (pyproject.toml)"
    for pin in pins.values():
        if ours in pin.via and pin.name not in direct_names:
            problems.append(f"{pin.name} is pinned for pyproject.toml, which no longer asks for it")

    for pin in pins.values():
        if not _applies(pin.marker):
            continue
        for needed in _installed_requirements(pin.name, pin.version) or []:
            if _applies(needed.marker):
                problems += _check_pinned(needed, pins, f"{pin.name}=={pin.version}")

    return problems


def _replace(path: Path, old: str, new: str, tmp_path: Path) -> Path:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: update this test"
    copy = tmp_path / path.name
    copy.write_text(text.replace(old, new, 1))
    return copy


# --- the real files -------------------------------------------------------------------------------


def test_lock_agrees_with_pyproject() -> None:
    problems = disagreements(PYPROJECT, LOCK)

    assert problems == [], "run `make lock`:\n" + "\n".join(problems)


def test_lock_pins_what_the_image_needs_on_both_platforms() -> None:
    pins = parse_lock(LOCK.read_text())

    # uvicorn[standard]'s event loop and HTTP parser, [asyncio]'s greenlet, [crypto]'s RSA.
    for name in ("uvloop", "httptools", "greenlet", "cryptography", "asyncpg"):
        assert name in pins
        assert _applies(pins[name].marker), f"{name} is left out on Linux by its marker"


def test_lock_is_written_by_make_lock() -> None:
    recipe = re.search(r"^lock:.*\n\t(.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert recipe, "the Makefile has a `lock` target"
    made = shlex.split(recipe.group(1))
    header = _COMPILE_COMMAND.search(LOCK.read_text())
    assert header, "the lock names the command that wrote it"
    written = shlex.split(header.group(1))

    # uv leaves --quiet and upgrade flags (LOCK_ARGS) out of the header.
    expected = [word for word in made if word not in ("--quiet", "$(LOCK_ARGS)")]
    assert expected[0].endswith("/uv")
    assert written == ["uv", *expected[1:]]
    # Hashes for pip's --require-hashes; one resolution for every platform (amd64 and arm64).
    assert {"--generate-hashes", "--universal"} <= set(written)
    assert written[written.index("--output-file") + 1] == LOCK.name


# --- the check catches what it must ---------------------------------------------------------------


def test_a_new_dependency_is_caught(tmp_path: Path) -> None:
    pyproject = _replace(
        PYPROJECT, '    "fastapi>=0.115",\n', '    "fastapi>=0.115",\n    "rich>=13",\n', tmp_path
    )

    assert disagreements(pyproject, LOCK) == ["rich (pyproject.toml) is not in the lock"]


def test_a_narrowed_specifier_is_caught(tmp_path: Path) -> None:
    pinned = parse_lock(LOCK.read_text())["fastapi"].version
    pyproject = _replace(PYPROJECT, '"fastapi>=0.115"', f'"fastapi>{pinned}"', tmp_path)

    assert disagreements(pyproject, LOCK) == [
        f"fastapi is pinned at {pinned} in the lock, but pyproject.toml asks for >{pinned}"
    ]


def test_a_removed_dependency_is_caught(tmp_path: Path) -> None:
    pyproject = _replace(PYPROJECT, '    "sniffio>=1.3",\n', "", tmp_path)

    assert disagreements(pyproject, LOCK) == [
        "sniffio is pinned for pyproject.toml, which no longer asks for it"
    ]


def test_a_new_extra_is_caught(tmp_path: Path) -> None:
    pyproject = _replace(
        PYPROJECT,
        '"sqlalchemy[asyncio]>=2.0.30"',
        '"sqlalchemy[asyncio,aiomysql]>=2.0.30"',
        tmp_path,
    )

    problems = disagreements(pyproject, LOCK)

    assert "aiomysql (sqlalchemy[aiomysql]) is not in the lock" in problems


def test_a_pin_without_hashes_is_caught(tmp_path: Path) -> None:
    text = LOCK.read_text()
    block = re.search(r"^fastapi==\S+ \\\n(    --hash=\S+( \\)?\n)+", text, re.MULTILINE)
    assert block
    version = block.group(0).split("==")[1].split()[0]
    lock = tmp_path / LOCK.name
    lock.write_text(text.replace(block.group(0), f"fastapi=={version}\n"))

    assert disagreements(PYPROJECT, lock) == [
        f"fastapi=={version} has no --hash=sha256: in the lock"
    ]


def test_a_missing_transitive_dependency_is_caught(tmp_path: Path) -> None:
    text = LOCK.read_text()
    block = re.search(r"^starlette==.*?(?=^\S)", text, re.MULTILINE | re.DOTALL)
    assert block
    lock = tmp_path / LOCK.name
    lock.write_text(text.replace(block.group(0), ""))

    problems = disagreements(PYPROJECT, lock)

    assert problems
    assert all(problem.startswith("starlette (fastapi") for problem in problems), problems


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_markers_are_read_for_the_image(machine: str) -> None:
    windows_only = Marker("sys_platform == 'win32'")
    old_python = Marker("python_full_version < '3.11.3'")
    this_machine = Marker(f"platform_machine == '{machine}'")

    assert not _applies(windows_only)
    assert not _applies(old_python)
    assert _applies(this_machine)
