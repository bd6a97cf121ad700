"""deploy/ checked against the code: the Dockerfile, docker-compose, the ClickHouse XML and the Kubernetes manifests.

Nothing is built or started (no Docker engine, no cluster): each file is parsed and its properties are
checked against what they refer to. Every ``LLMPULSE_*`` variable is a field of the collector's
``Settings`` and the values validate; files mounted or copied exist; ports and probe paths match the
app's routes; commands parse with the real ``llmpulse`` CLI; selectors match pod labels; ClickHouse's
system logs are removed or TTL-capped and its users' grants cover the collector's DDL. Where a schema
or tool is installed (the Compose spec from check-jsonschema, Kubernetes schemas from
kubernetes-validate, kubectl's kustomize, chDB to parse ClickHouse SQL), the files are validated
against it too; otherwise those checks skip and say what is missing.
"""

from __future__ import annotations

import base64
import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from llmpulse_collector.export.datadog import datadog_configured
from llmpulse_collector.settings import LOOPBACK_HOSTS, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_DATADOG = DEPLOY / "docker-compose.datadog.yml"
CH_CONFIG = DEPLOY / "clickhouse" / "config.d" / "llmpulse.xml"
CH_USERS = DEPLOY / "clickhouse" / "users.d" / "llmpulse.xml"
CLUSTER_DOC = K8S / "clickhouse-cluster.md"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "llmpulse.yml"
GRAFANA_DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "llmpulse.yml"
GRAFANA_DASHBOARDS = REPO / "dashboards" / "grafana"

COLLECTOR_PORT = 4318
CLICKHOUSE_HTTP_PORT = 8123
CLICKHOUSE_NATIVE_PORT = 9000

# How long the collector may take to stop on SIGTERM: uvicorn's timeout_graceful_shutdown (server.py)
# plus the writer's drain timeout (app._close). Grace periods must exceed it.
SHUTDOWN_BUDGET_S = 10 + 15

# Every system log table a ClickHouse server may write; each must be removed or TTL-capped.
SYSTEM_LOGS = (
    "query_log",
    "query_thread_log",
    "query_views_log",
    "query_metric_log",
    "part_log",
    "trace_log",
    "metric_log",
    "asynchronous_metric_log",
    "text_log",
    "processors_profile_log",
    "opentelemetry_span_log",
    "asynchronous_insert_log",
    "session_log",
    "zookeeper_log",
    "crash_log",
    "error_log",
    "latency_log",
    "backup_log",
    "s3queue_log",
    "blob_storage_log",
)
MAX_SYSTEM_LOG_TTL_DAYS = 30

# `LLMPULSE_*` names the deploy files may mention although Settings has no such field (yet).
NOT_YET_SETTINGS = {"LLMPULSE_API_KEYS": "commented placeholder in secret.yaml for the API keys milestone"}

# Manifests in deploy/k8s that kustomization.yaml leaves out on purpose (its comments say why).
APPLIED_SEPARATELY = ("migrate-job.yaml", "servicemonitor.yaml")
KUBERNETES_VERSIONS = ("1.30.0", "latest")


# ---------------------------------------------------------------------------------------------------
# helpers


def _require(path: Path) -> None:
    """Fail when a file the deployment refers to is missing."""
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} ..."""

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        value = env.get(name)
        op, arg = m["op"], m["arg"] or ""
        if op is None:
            return value or ""
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if unset else str(value)
        if op.endswith("?"):
            if unset:
                raise ValueError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return "" if unset else arg  # ':+' / '+'

    return _INTERPOLATION.sub(one, text)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge for what these files override: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def compose_project(*files: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    project: dict[str, Any] = {}
    for path in files:
        project = _merge(project, _interpolate_tree(_yaml(path), env or {}))
    return project


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}


def bind_mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source as written, target) of a service's bind mounts (sources starting with . or /)."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def named_volumes(service: Mapping[str, Any]) -> dict[str, str]:
    """target -> volume name, for a service's named volumes."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                found[volume["target"]] = volume["source"]
            continue
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            found[target] = source
    return found


def host_path(service: Mapping[str, Any], container_path: str) -> Path | None:
    """Where a path inside a compose container comes from in the repository (longest bind-mount match)."""
    best: tuple[int, Path] | None = None
    wanted = PurePosixPath(container_path)
    for source, target in bind_mounts(service):
        target_path = PurePosixPath(target)
        if wanted == target_path or target_path in wanted.parents:
            rest = wanted.relative_to(target_path)
            candidate = (COMPOSE.parent / source / rest).resolve()
            if best is None or len(target_path.parts) > best[0]:
                best = (len(target_path.parts), candidate)
    return best[1] if best else None


def published_ports(service: Mapping[str, Any]) -> list[tuple[str | None, int, int, str]]:
    """(host ip, host port, container port, protocol) of a service's short-syntax port mappings."""
    result = []
    for entry in service.get("ports") or []:
        spec, _, proto = str(entry).partition("/")
        parts = spec.split(":")
        ip = parts[0] if len(parts) == 3 else None
        host, container = (parts[-2], parts[-1]) if len(parts) >= 2 else (parts[0], parts[0])
        result.append((ip, int(host), int(container), proto or "tcp"))
    return result


def parse_duration(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(number) * units[unit]
    return total


def parse_quantity(text: str) -> int:
    """A Kubernetes quantity (4Gi, 512Mi, 1G) in bytes."""
    factors = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", str(text))
    assert m, f"not a quantity: {text!r}"
    return int(m[1]) * factors.get(m[2], 1)


# -- Dockerfile


class Dockerfile:
    """The instructions of deploy/Dockerfile's final stage, with ARG defaults substituted in FROM."""

    def __init__(self, path: Path) -> None:
        self.stages: list[list[tuple[str, str]]] = []
        global_args: dict[str, str] = {}
        logical = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                logical += line[:-1] + " "
                continue
            logical += line
            instruction, _, rest = logical.partition(" ")
            logical = ""
            instruction = instruction.upper()
            if instruction == "FROM":
                image = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], ""), rest.split()[0])
                self.stages.append([("FROM", image)])
            elif not self.stages:
                if instruction == "ARG" and "=" in rest:
                    name, _, default = rest.partition("=")
                    global_args[name.strip()] = default.strip()
            else:
                self.stages[-1].append((instruction, rest.strip()))

    @property
    def final(self) -> list[tuple[str, str]]:
        return self.stages[-1]

    def all(self, instruction: str, stage: list[tuple[str, str]] | None = None) -> list[str]:
        return [rest for inst, rest in (stage or self.final) if inst == instruction]

    def one(self, instruction: str) -> str:
        found = self.all(instruction)
        assert len(found) == 1, f"expected one {instruction} in the final stage, got {found}"
        return found[0]

    @property
    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.all("ENV"):
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                values[name] = value
        return values

    @property
    def entrypoint(self) -> list[str]:
        value = json.loads(self.one("ENTRYPOINT"))
        assert isinstance(value, list), "ENTRYPOINT must be in exec (JSON) form so SIGTERM reaches the collector"
        return value

    @property
    def healthcheck(self) -> list[str]:
        _options, _, command = self.one("HEALTHCHECK").partition(" CMD ")
        value = json.loads(command)
        assert isinstance(value, list), "HEALTHCHECK CMD must be in exec (JSON) form"
        return value


@cache
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE)


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    parts = PurePosixPath(relative).parts
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for pattern in patterns:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pattern[3:]):
                return True
    return False


# -- settings, CLI, app


def settings_vars(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("LLMPULSE_")}


def check_settings(env: Mapping[str, str], where: str, *, starts: bool = True) -> Settings:
    """Every LLMPULSE_* name is a Settings field and the values build Settings.

    With ``starts``, also what ``llmpulse serve`` checks before listening: a non-loopback address
    needs LLMPULSE_BEHIND_AUTH_PROXY=true while API keys do not exist.
    """
    fields = set(Settings.model_fields)
    values = settings_vars(env)
    unknown = sorted(k for k in values if k.removeprefix("LLMPULSE_").lower() not in fields)
    assert not unknown, f"{where}: {unknown} are not collector settings (fields: {sorted(fields)})"
    kwargs: dict[str, Any] = {k.removeprefix("LLMPULSE_").lower(): v for k, v in values.items()}
    settings = Settings(**kwargs)
    if starts and settings.host not in LOOPBACK_HOSTS:
        assert settings.behind_auth_proxy, (
            f"{where}: host {settings.host} without API keys needs LLMPULSE_BEHIND_AUTH_PROXY=true, "
            "or `llmpulse serve` refuses to start"
        )
    return settings


@cache
def app_routes() -> frozenset[str]:
    from llmpulse_collector.app import create_app

    app = create_app(Settings())  # storage opens in the lifespan, which is not entered here
    return frozenset(getattr(route, "path", "") for route in app.routes)


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """Parse argv with the real `llmpulse` command; the command itself is replaced by a recorder."""
    import llmpulse._cli as cli
    from llmpulse_collector import server

    calls: list[tuple[str, Any]] = []

    def record(name: str) -> Any:
        def recorder(arg: Any, *rest: Any, **kwargs: Any) -> int:
            calls.append((name, arg))
            return 0

        return recorder

    monkeypatch.setattr(cli, "_demo", record("demo"))
    monkeypatch.setattr(server, "serve", record("serve"))
    monkeypatch.setattr(server, "migrate_command", record("migrate"))
    assert cli.main(argv) == 0, f"llmpulse {shlex.join(argv)} failed"
    assert len(calls) == 1, calls
    return calls[0]


def console_scripts() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text()))


# -- ClickHouse XML


@cache
def ch_config() -> ET.Element:
    return ET.parse(CH_CONFIG).getroot()


@cache
def ch_users() -> ET.Element:
    return ET.parse(CH_USERS).getroot()


def grant_queries(user: ET.Element) -> list[str]:
    return [" ".join((q.text or "").split()) for q in user.findall("grants/query")]


def granted(user: ET.Element, database: str) -> set[str]:
    """The privileges a user's grants give on `database.*`."""
    privileges: set[str] = set()
    for query in grant_queries(user):
        m = re.fullmatch(r"GRANT (.+?) ON (\S+)", query)
        assert m, f"unexpected grant {query!r}"
        if m[2] in (f"{database}.*", "*.*"):
            privileges.update(p.strip() for p in m[1].split(","))
    return privileges


def run_chdb(script: str, payload: Any) -> Any:
    """Run a chDB script in a child process (chDB holds one engine per process) and return its JSON output."""
    pytest.importorskip("chdb", reason="chDB (the collector extra) parses ClickHouse SQL here")
    code = textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- Kubernetes


@cache
def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    return {path.name: _yaml_docs(path) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"}


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for docs in k8s_docs().values() for doc in docs]


def k8s_object(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in k8s_objects() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@cache
def kustomization() -> dict[str, Any]:
    return dict(_yaml(K8S / "kustomization.yaml"))


def workloads() -> list[dict[str, Any]]:
    return [d for d in k8s_objects() if d["kind"] in ("StatefulSet", "Deployment", "Job")]


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def container_env(workload: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
    """What the container sees: the image's ENV, then envFrom (ConfigMaps, Secrets), then env."""
    env = dict(dockerfile().env)
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(k8s_object("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(secret_values(k8s_object("Secret", source["secretRef"]["name"])))
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def collector_workload() -> dict[str, Any]:
    return k8s_object("StatefulSet", "llmpulse-collector")


def collector_container() -> dict[str, Any]:
    containers = pod_spec(collector_workload())["containers"]
    return next(c for c in containers if c["name"] == "collector")


def kustomized_image(image: str) -> str:
    name, _, tag = image.partition(":")
    for entry in kustomization().get("images") or []:
        if entry["name"] == name:
            return f"{entry.get('newName', name)}:{entry.get('newTag', tag)}"
    return image


# ---------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def test_dockerfile_entrypoint_is_the_console_script_serving_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    df = dockerfile()
    entrypoint = df.entrypoint
    assert entrypoint == ["llmpulse", "serve"]
    assert entrypoint[0] in console_scripts(), "ENTRYPOINT must be a [project.scripts] command"
    assert run_cli(entrypoint[1:], monkeypatch)[0] == "serve"
    assert df.final[0] == ("FROM", "python:3.11-slim")
    assert df.all("STOPSIGNAL") in ([], ["SIGTERM"]), "the collector drains its log on SIGTERM"


def test_dockerfile_installs_the_collector_extra_from_the_copied_sources() -> None:
    df = dockerfile()
    build = df.stages[0]
    runs = " ".join(df.all("RUN", build))
    assert "pip install '.[collector]'" in runs
    assert "collector" in pyproject()["project"]["optional-dependencies"]
    copied = [src for rest in df.all("COPY", build) for src in shlex.split(rest)[:-1] if not src.startswith("--")]
    patterns = dockerignore_patterns()
    readme = pyproject()["project"]["readme"]
    assert readme in copied, f"pyproject's readme {readme} must be in the build context (pip reads it)"
    for src in copied:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert not dockerignored(src.rstrip("/"), patterns), f"COPY {src}: excluded by .dockerignore"
    # the packages setuptools finds (`where`) are copied
    for where in pyproject()["tool"]["setuptools"]["packages"]["find"]["where"]:
        assert f"{where}/" in copied or where in copied, f"package root {where} not copied"
    # the C extensions are built (setup.py and a compiler in the build stage) and checked there
    assert "setup.py" in copied
    assert "gcc" in runs
    assert "import llmpulse_collector._otlpscan, llmpulse._otlpenc" in runs
    assert "gcc" not in " ".join(df.all("RUN", df.final)), "the runtime stage stays compiler-free"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    assert not [p for p in patterns if p.startswith("!")], "no re-includes: keep the ignore file a plain deny list"
    for path in (".venv/bin/python", ".git/HEAD", ".llmpulse/wal.sqlite3", "sdk/.llmpulse/wal.sqlite3",
                 ".pytest_cache/x", ".mypy_cache/x", ".ruff_cache/x", ".hypothesis/x",
                 "sdk/llmpulse/__pycache__/x.pyc", "llmpulse.egg-info/PKG-INFO"):  # fmt: skip
        assert dockerignored(path, patterns), f"{path} would be sent to the docker daemon"
    for path in ("pyproject.toml", "README.md", "sdk/llmpulse/__init__.py", "collector/llmpulse_collector/app.py"):
        assert not dockerignored(path, patterns), f"{path} is needed by the build"


def test_dockerfile_runtime_user_port_volume_and_settings() -> None:
    df = dockerfile()
    user = df.one("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "USER must be a numeric uid (Kubernetes' runAsNonRoot can only check a number)"
    assert int(uid) > 0, "USER must not be root"
    assert gid.isdigit()
    assert int(gid) > 0
    # The image alone does not start on 0.0.0.0: whether access is controlled in front of it is the
    # deployment's statement (compose and k8s make it), not the image's.
    settings = check_settings(df.env, "Dockerfile ENV", starts=False)
    assert settings.host == "0.0.0.0"
    assert "LLMPULSE_BEHIND_AUTH_PROXY" not in df.env
    assert df.one("EXPOSE").split() == [str(COLLECTOR_PORT)] == [str(settings.port)]
    assert json.loads(df.one("VOLUME")) == [str(settings.data_dir)], "the WAL directory must be a volume"
    assert settings.wal_path.parent == settings.data_dir


def test_dockerfile_healthcheck_probes_healthz_on_the_configured_port() -> None:
    """Run the HEALTHCHECK command against a stand-in server: it hits /healthz, and fails on an error answer."""
    command = dockerfile().healthcheck
    assert command[0] == "python", "the slim image has no curl: the check uses Python"
    seen: list[str] = []
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(status["code"])
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**os.environ, "LLMPULSE_PORT": str(server.server_address[1])}
        argv = [sys.executable, *command[1:]]
        ok = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
        assert ok.returncode == 0, ok.stderr
        status["code"] = 503
        failing = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
        assert failing.returncode != 0
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/healthz", "/healthz"]
    assert "/healthz" in app_routes()


# ---------------------------------------------------------------------------------------------------
# docker compose


@cache
def compose() -> dict[str, Any]:
    return compose_project(COMPOSE)


def compose_with_datadog() -> dict[str, Any]:
    return compose_project(COMPOSE, COMPOSE_DATADOG, env={"DD_API_KEY": "test-key"})


def test_compose_files_validate_against_the_compose_spec() -> None:
    from importlib.resources import files

    import check_jsonschema  # noqa: F401  (ships the Compose spec's JSON schema)
    import jsonschema

    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for path in (COMPOSE, COMPOSE_DATADOG):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_yaml(path))]
        assert not errors, f"{path.name}: {errors}"
    # the same once the variables are interpolated (ports and durations are then checked by type)
    for project in (compose(), compose_with_datadog()):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(project)]
        assert not errors, errors


def test_compose_settings_are_collector_fields_with_valid_values() -> None:
    for project in (compose(), compose_with_datadog()):
        for name, service in project["services"].items():
            env = service_env(service)
            if name == "collector":
                # what the process sees: the image's ENV, then compose's environment
                check_settings({**dockerfile().env, **env}, f"compose service {name}")
            elif settings_vars(env):
                check_settings(env, f"compose service {name}")


def test_compose_collector_build_image_ports_and_wal_volume() -> None:
    project = compose()
    collector = project["services"]["collector"]
    context = (COMPOSE.parent / collector["build"]["context"]).resolve()
    assert context == REPO, "the Dockerfile expects the repository root as its build context"
    assert (context / collector["build"]["dockerfile"]).resolve() == DOCKERFILE
    settings = check_settings({**dockerfile().env, **service_env(collector)}, "compose collector")
    assert settings.port == COLLECTOR_PORT
    assert [p[2] for p in published_ports(collector)] == [COLLECTOR_PORT]
    volumes = named_volumes(collector)
    assert str(settings.data_dir) in volumes, "the write-ahead log must be on a named volume"
    assert volumes[str(settings.data_dir)] in project["volumes"]
    assert parse_duration(collector["stop_grace_period"]) > SHUTDOWN_BUDGET_S


def test_compose_publishes_ports_on_loopback_only() -> None:
    """LLMPULSE_BEHIND_AUTH_PROXY=true is only true while nothing is reachable from other machines."""
    for project in (compose(), compose_with_datadog()):
        for name, service in project["services"].items():
            for ip, host, container, proto in published_ports(service):
                assert ip == "127.0.0.1", f"{name} publishes {host}->{container}/{proto} beyond loopback"


def test_compose_named_volumes_are_declared_and_hold_each_services_state() -> None:
    project = compose()
    declared = set(project["volumes"])
    used = {v for s in project["services"].values() for v in named_volumes(s).values()}
    assert used == declared, f"declared but unused: {declared - used}; used but undeclared: {used - declared}"
    services = project["services"]
    assert "/var/lib/clickhouse" in named_volumes(services["clickhouse"])
    assert "/var/lib/grafana" in named_volumes(services["grafana"])
    tsdb = next(a.split("=", 1)[1] for a in services["prometheus"]["command"] if a.startswith("--storage.tsdb.path="))
    assert tsdb in named_volumes(services["prometheus"])
    storage = next(a.split("=", 1)[1] for a in services["alertmanager"]["command"] if a.startswith("--storage.path="))
    assert storage in named_volumes(services["alertmanager"])


def _mounts() -> list[tuple[str, str, str]]:
    return [
        (name, source, target)
        for name, service in compose_project(COMPOSE)["services"].items()
        for source, target in bind_mounts(service)
    ]


@pytest.mark.parametrize(("service", "source", "target"), _mounts(), ids=str)
def test_compose_bind_mounts_exist_in_the_repository(service: str, source: str, target: str) -> None:
    path = (COMPOSE.parent / source).resolve()
    assert REPO in path.parents, f"{service}: {source} is outside the repository"
    _require(path)
    if target.endswith((".xml", ".yml", ".yaml", ".json")):
        assert path.is_file(), f"{service}: {source} mounted as a file must be a file"


def test_the_clickhouse_server_merges_at_the_collectors_merge_priority() -> None:
    """The server's merges are niced as the embedded store's are (LLMPULSE_MERGE_NICE's default),
    and compose gives the server the capability ClickHouse needs to apply it."""
    element = ch_config().find("os_threads_nice_value_merge_mutate")
    assert element is not None
    assert element.text is not None
    assert int(element.text) == Settings.model_fields["merge_nice"].default
    assert "SYS_NICE" in compose()["services"]["clickhouse"].get("cap_add", [])


def test_compose_collector_reaches_clickhouse_as_the_configured_user() -> None:
    project = compose()
    services = project["services"]
    settings = check_settings({**dockerfile().env, **service_env(services["collector"])}, "compose collector")
    assert settings.storage is not None
    dsn = urlsplit(settings.storage)
    assert dsn.scheme == "http"
    assert dsn.hostname == "clickhouse"
    assert dsn.hostname in services
    assert dsn.port == CLICKHOUSE_HTTP_PORT
    assert dsn.path in ("", "/"), (
        "a database in the DSN must exist before the first start; the collector creates its own"
    )
    user = ch_users().find(f"users/{dsn.username}")
    assert user is not None, f"ClickHouse user {dsn.username} is not defined in {CH_USERS.name}"
    password_var = user.find("password").get("from_env", "")  # type: ignore[union-attr]
    clickhouse_env = service_env(services["clickhouse"])
    assert clickhouse_env.get(password_var) == dsn.password, "the DSN's password is not the one ClickHouse is given"
    assert granted(user, settings.database) >= {"SELECT", "INSERT", "CREATE DATABASE", "CREATE TABLE"}
    depends = services["collector"]["depends_on"]
    assert depends["clickhouse"]["condition"] == "service_healthy"
    assert services["clickhouse"]["healthcheck"]["test"]
    for _source, target in bind_mounts(services["clickhouse"]):
        assert target.startswith(("/etc/clickhouse-server/config.d/", "/etc/clickhouse-server/users.d/"))
        assert target.endswith(".xml"), "mount single files: the image's entrypoint writes into users.d"


def test_compose_passwords_reach_every_user_that_needs_one() -> None:
    """from_env with an unset variable would leave a network user without a password."""
    clickhouse_env = service_env(compose()["services"]["clickhouse"])
    for user in ch_users().findall("users/*"):
        password = user.find("password")
        if password is None:
            continue
        var = password.get("from_env")
        assert var, f"user {user.tag}: the password must come from the environment, not the repository"
        assert clickhouse_env.get(var), f"user {user.tag}: the clickhouse service does not set {var}"


def test_compose_demo_profile_sends_to_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    demo = services["demo"]
    assert demo["profiles"] == ["demo"]
    assert demo["build"] == services["collector"]["build"]
    assert demo["image"] == services["collector"]["image"]
    entrypoint = demo.get("entrypoint") or dockerfile().entrypoint
    assert entrypoint[0] in console_scripts()
    kind, args = run_cli([*entrypoint[1:], *demo.get("command", [])], monkeypatch)
    assert kind == "demo"
    endpoint = urlsplit(args.endpoint)
    assert endpoint.hostname == "collector"
    assert endpoint.port == COLLECTOR_PORT
    assert demo["depends_on"]["collector"]["condition"] == "service_healthy"
    assert dockerfile().healthcheck, "service_healthy needs the collector image's HEALTHCHECK"
    assert demo["healthcheck"] == {"disable": True}, "the image's check would probe a collector inside the demo"
    assert "profiles" not in services["collector"]


def test_compose_datadog_profile_turns_dogstatsd_on_only_with_the_override() -> None:
    plain = compose()
    agent = plain["services"]["datadog-agent"]
    assert agent["profiles"] == ["datadog"]
    assert agent["image"] == "gcr.io/datadoghq/agent:7"
    agent_env = service_env(agent)
    assert agent_env["DD_DOGSTATSD_NON_LOCAL_TRAFFIC"] == "true"
    assert "DD_API_KEY" in agent_env
    assert [(p[2], p[3]) for p in published_ports(agent)] == [(8125, "udp")]
    for name, service in plain["services"].items():
        if name != "datadog-agent":
            assert not datadog_configured(service_env(service)), f"{name} sends DogStatsD without the profile"

    merged = compose_with_datadog()
    collector_env = service_env(merged["services"]["collector"])
    assert datadog_configured(collector_env)
    assert collector_env["DD_AGENT_HOST"] in merged["services"], "DD_AGENT_HOST must name the agent's service"
    assert collector_env.get("DD_DOGSTATSD_PORT", "8125") == "8125"
    assert merged["services"]["collector"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert set(_yaml(COMPOSE_DATADOG)["services"]) <= set(plain["services"]), "the override only amends services"
    with pytest.raises(ValueError, match="DD_API_KEY"):
        compose_project(COMPOSE, COMPOSE_DATADOG, env={})


def test_compose_prometheus_scrapes_the_collector_and_alerts_via_alertmanager() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_arg = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = host_path(prometheus, config_arg)
    assert config_path == PROMETHEUS_CONFIG.resolve()
    _require(PROMETHEUS_CONFIG)
    config = _yaml(PROMETHEUS_CONFIG)
    targets = {
        target
        for job in config.get("scrape_configs") or []
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs") or []
        for target in static.get("targets") or []
    }
    assert f"collector:{COLLECTOR_PORT}" in targets, f"no scrape job for the collector's /metrics in {targets}"
    assert "/metrics" in app_routes()
    alertmanagers = {
        target
        for am in (config.get("alerting") or {}).get("alertmanagers") or []
        for static in am.get("static_configs") or []
        for target in static.get("targets") or []
    }
    alertmanager_port = published_ports(services["alertmanager"])[0][2]
    assert f"alertmanager:{alertmanager_port}" in alertmanagers
    rule_files = config.get("rule_files") or []
    assert rule_files, "no rule_files"
    for pattern in rule_files:
        container_pattern = pattern if pattern.startswith("/") else str(PurePosixPath(config_arg).parent / pattern)
        directory = host_path(prometheus, str(PurePosixPath(container_pattern).parent))
        assert directory is not None, f"rule_files {pattern} is not mounted into the container"
        matched = sorted(directory.glob(PurePosixPath(container_pattern).name))
        assert matched, f"rule_files {pattern} matches no file in {directory}"
        for rules in matched:
            assert "groups" in _yaml(rules), f"{rules} is not a rule file"


def test_compose_alertmanager_config_is_mounted() -> None:
    alertmanager = compose()["services"]["alertmanager"]
    config_arg = next(a.split("=", 1)[1] for a in alertmanager["command"] if a.startswith("--config.file="))
    assert host_path(alertmanager, config_arg) == ALERTMANAGER_CONFIG.resolve()
    _require(ALERTMANAGER_CONFIG)
    assert "route" in _yaml(ALERTMANAGER_CONFIG)


def test_compose_grafana_datasources_point_at_the_stack() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    assert host_path(grafana, "/etc/grafana/provisioning/datasources/llmpulse.yml") == GRAFANA_DATASOURCES.resolve()
    _require(GRAFANA_DATASOURCES)
    env = service_env(grafana)
    plugins = {p.split()[0] for p in env.get("GF_INSTALL_PLUGINS", "").split(",") if p.strip()}

    def expand(value: Any) -> str:
        # Grafana expands $VAR and ${VAR} from its own environment in provisioning files
        text = str(value)
        for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", text):
            assert name in env, f"the datasource uses ${name}, which the grafana service does not set"
        return interpolate(text, env)

    datasources = _yaml(GRAFANA_DATASOURCES)["datasources"]
    collector = check_settings({**dockerfile().env, **service_env(services["collector"])}, "compose collector")
    for ds in datasources:
        if ds["type"] == "prometheus":
            url = urlsplit(expand(ds["url"]))
            assert url.hostname == "prometheus"
            assert url.port in [p[2] for p in published_ports(services["prometheus"])]
            continue
        assert ds["type"] == "grafana-clickhouse-datasource", ds["type"]
        assert ds["type"] in plugins, "the ClickHouse datasource plugin must be installed (GF_INSTALL_PLUGINS)"
        data = ds["jsonData"]
        assert expand(data["host"]) == "clickhouse"
        protocol = data.get("protocol", "native")
        assert int(data["port"]) == (CLICKHOUSE_NATIVE_PORT if protocol == "native" else CLICKHOUSE_HTTP_PORT)
        assert expand(data.get("defaultDatabase", collector.database)) == collector.database
        for secret in (ds.get("secureJsonData") or {}).values():
            expand(secret)
        username = expand(data.get("username", "default"))
        assert username != "default", "Grafana must log in as its read-only user, not `default` (loopback only)"
        user = ch_users().find(f"users/{username}")
        assert user is not None, f"ClickHouse user {username} is not defined in {CH_USERS.name}"
        assert "::/0" in [ip.text for ip in user.findall("networks/ip")], f"{username} cannot log in from Grafana"
        profile = ch_users().find(f"profiles/{user.findtext('profile')}")
        assert profile is not None, f"{username}: profile {user.findtext('profile')} is not defined"
        assert profile.findtext("readonly") in ("1", "2"), "Grafana's user must be read-only"
        assert granted(user, collector.database) == {"SELECT"}
        password_var = user.find("password").get("from_env", "")  # type: ignore[union-attr]
        secret = expand((ds.get("secureJsonData") or {}).get("password", ""))
        assert service_env(services["clickhouse"])[password_var] == secret


def test_compose_grafana_mounts_every_dashboard_where_the_provider_looks() -> None:
    grafana = compose()["services"]["grafana"]
    _require(GRAFANA_DASHBOARD_PROVIDERS)
    providers = _yaml(GRAFANA_DASHBOARD_PROVIDERS)["providers"]
    paths = {p["options"]["path"] for p in providers if p.get("type", "file") == "file"}
    assert len(paths) == 1, paths
    (provider_path,) = paths
    _require(GRAFANA_DASHBOARDS)
    dashboards = sorted(p for p in GRAFANA_DASHBOARDS.glob("*.json") if "panels" in json.loads(p.read_text()))
    assert dashboards, "no dashboard JSON in dashboards/grafana"
    mounted = {(COMPOSE.parent / source).resolve(): target for source, target in bind_mounts(grafana)}
    for dashboard in dashboards:
        assert dashboard.resolve() in mounted, f"{dashboard.name} is not mounted into Grafana"
        assert PurePosixPath(mounted[dashboard.resolve()]).parent == PurePosixPath(provider_path)
    under_provider = [s for s, t in mounted.items() if PurePosixPath(provider_path) in PurePosixPath(t).parents]
    assert all(s.suffix == ".json" and s.is_file() for s in under_provider), "only dashboard files under the path"


# ---------------------------------------------------------------------------------------------------
# ClickHouse XML


def test_clickhouse_xml_is_well_formed_with_the_clickhouse_root() -> None:
    for root in (ch_config(), ch_users()):
        assert root.tag == "clickhouse"


@pytest.mark.parametrize("table", SYSTEM_LOGS)
def test_clickhouse_system_log_is_removed_or_ttl_capped(table: str) -> None:
    element = ch_config().find(table)
    assert element is not None, f"{table} is neither removed nor TTL-capped in {CH_CONFIG.name}"
    ttl = element.findtext("ttl")
    if element.get("remove") is not None:
        assert ttl is None, f"{table}: remove and ttl together"
        return
    assert ttl, f"{table}: kept without a <ttl>"
    assert element.find("engine") is None, f"{table}: ClickHouse refuses <ttl> next to <engine>"
    m = re.fullmatch(r"event_date \+ INTERVAL (\d+) (DAY|WEEK|HOUR)( DELETE)?", " ".join(ttl.split()))
    assert m, f"{table}: unexpected TTL {ttl!r}"
    days = int(m[1]) * {"DAY": 1, "WEEK": 7, "HOUR": 1 / 24}[m[2]]
    assert days <= MAX_SYSTEM_LOG_TTL_DAYS


def test_clickhouse_server_log_goes_to_the_console_below_trace() -> None:
    logger = ch_config().find("logger")
    assert logger is not None
    assert logger.findtext("level") not in (None, "trace", "test")
    assert logger.findtext("console") in ("1", "true")
    for name in ("log", "errorlog"):
        element = logger.find(name)
        assert element is not None, f"logger/{name} is not overridden"
        assert element.get("remove") is not None, f"logger/{name} writes files"


def test_clickhouse_users_and_grants() -> None:
    users = ch_users()
    default = users.find("users/default")
    assert default is not None
    assert default.find("networks").get("replace") is not None  # type: ignore[union-attr]
    assert {ip.text for ip in default.findall("networks/ip")} <= {"::1", "127.0.0.1"}
    profiles = {p.tag for p in users.findall("profiles/*")} | {"default"}
    for user in users.findall("users/*"):
        assert (user.findtext("profile") or "default") in profiles, f"{user.tag}: unknown profile"
        if user.tag != "default":
            assert user.find("password") is not None, f"{user.tag}: no password"
            assert user.find("access_management") is None, "grants and access_management do not combine"


def test_clickhouse_collector_grants_cover_the_schema_statements() -> None:
    from llmpulse_collector.storage.migrations import schema_statements

    database = Settings().database
    privileges = granted(ch_users().find("users/llmpulse"), database)  # type: ignore[arg-type]
    needed = {"CREATE DATABASE", "INSERT", "SELECT"}  # Store.connect, the writer, the query API
    for migration in schema_statements(database):
        for statement in migration.statements:
            if statement.startswith("CREATE TABLE"):
                needed.add("CREATE TABLE")
            elif statement.startswith("CREATE MATERIALIZED VIEW"):
                needed.add("CREATE VIEW")
            elif statement.startswith("INSERT INTO"):  # a backfill: INSERT ... SELECT
                needed.update({"INSERT", "SELECT"})
            elif statement.startswith("ALTER TABLE") and re.search(r"\n(ADD|MATERIALIZE) COLUMN ", statement):
                needed.add("ALTER")  # ALTER ADD COLUMN and ALTER MATERIALIZE COLUMN are part of it
            else:
                pytest.fail(f"no privilege mapped for {statement.splitlines()[0]!r}")
    assert needed <= privileges, f"missing grants: {needed - privileges}"


def test_clickhouse_sql_in_the_configs_parses() -> None:
    """TTL expressions create a table with the system logs' date columns; grant queries pass ClickHouse's parser."""
    ttls = [e.findtext("ttl") for e in ch_config() if e.findtext("ttl")]
    grants = [q for user in ch_users().findall("users/*") for q in grant_queries(user)]
    doc_grants = [" ".join(q.split()) for q in re.findall(r"<query>(.*?)</query>", CLUSTER_DOC.read_text())]
    assert doc_grants, "clickhouse-cluster.md shows the cluster's grants"
    script = r"""
        import json, sys
        import chdb
        payload = json.load(sys.stdin)
        conn = chdb.connect(":memory:")
        cur = conn.cursor()
        for i, ttl in enumerate(payload["ttls"]):
            cur.execute(
                f"CREATE TABLE t{i} (event_date Date, event_time DateTime) ENGINE = MergeTree "
                f"ORDER BY event_date TTL {ttl}"
            )
        for grant in payload["grants"]:
            literal = (grant + " TO someone").replace("\\", "\\\\").replace("'", "\\'")
            cur.execute(f"SELECT formatQuery('{literal}')")
        print(json.dumps("ok"))
    """
    assert run_chdb(script, {"ttls": ttls, "grants": grants + doc_grants}) == "ok"


def test_cluster_doc_names_the_tables_and_grants_cluster_ddl_creates() -> None:
    from llmpulse_collector.storage.migrations import schema_statements

    text = CLUSTER_DOC.read_text()
    assert "LLMPULSE_CLUSTER" in text
    assert "cluster" in Settings.model_fields
    ddl = "\n".join(s for m in schema_statements("llmpulse", cluster="llmpulse") for s in m.statements)
    assert "ON CLUSTER `llmpulse`" in ddl
    assert "ReplicatedMergeTree" in ddl
    assert "Distributed(" in ddl
    created = set(re.findall(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS `llmpulse`\.`(\w+)`", ddl))
    named = set(re.findall(r"`(\w+_(?:local|mv|1m))`", text)) | {"schema_migrations", "spans"}
    assert named <= created, f"the doc names tables cluster DDL does not create: {named - created}"
    assert "CLUSTER" in text
    assert "REMOTE" in text
    assert (K8S / "migrate-job.yaml").name in text


# ---------------------------------------------------------------------------------------------------
# Kubernetes


def test_k8s_objects_have_identity_and_the_kustomization_lists_them() -> None:
    for file, docs in k8s_docs().items():
        assert docs, f"{file} is empty"
        for doc in docs:
            assert doc.get("apiVersion"), f"{file}: no apiVersion in {doc}"
            assert doc.get("kind"), f"{file}: no kind in {doc}"
            assert doc.get("metadata", {}).get("name"), f"{file}: {doc['kind']} without metadata.name"
    kust = kustomization()
    resources = kust["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), f"kustomization.yaml lists {resource}, which does not exist"
    text = (K8S / "kustomization.yaml").read_text()
    for file in k8s_docs():
        if file in APPLIED_SEPARATELY:
            assert file not in resources, f"{file} must be applied on its own"
            assert file in text, f"{file}: say in kustomization.yaml why it is separate"
        else:
            assert file in resources, f"{file} is not in kustomization.yaml's resources"
    namespace = kust["namespace"]
    assert k8s_object("Namespace")["metadata"]["name"] == namespace
    for file in APPLIED_SEPARATELY:
        for doc in k8s_docs()[file]:
            assert doc["metadata"].get("namespace") == namespace, f"{file} is applied with -f: name the namespace"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_k8s_manifests_validate_against_the_kubernetes_schema(version: str) -> None:
    import kubernetes_validate  # the Kubernetes JSON schemas

    version = kubernetes_validate.latest_version() if version == "latest" else version
    checked = 0
    for file, docs in k8s_docs().items():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a CRD: test_k8s_servicemonitor checks it
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{file}: {doc['kind']} {list(exc.path)}: {exc.message}")
            checked += 1
    assert checked >= len(kustomization()["resources"])


def test_k8s_kustomize_build() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its built-in kustomize renders deploy/k8s)")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    expected = sum(len(_yaml_docs(K8S / r)) for r in kustomization()["resources"])
    assert len(rendered) == expected
    namespace = kustomization()["namespace"]
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace
    statefulset = next(d for d in rendered if d["kind"] == "StatefulSet")
    image = statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == kustomized_image(collector_container()["image"])
    assert statefulset["spec"]["selector"]["matchLabels"] == collector_workload()["spec"]["selector"]["matchLabels"]


def test_k8s_workload_selectors_match_their_pod_labels() -> None:
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"].get("selector")
        if workload["kind"] != "Job":
            assert selector, f"{workload['metadata']['name']}: no selector"
            assert matches(selector, labels), f"{workload['metadata']['name']}: selector vs labels"


def test_k8s_collector_statefulset_keeps_a_wal_per_replica() -> None:
    statefulset = collector_workload()
    spec = statefulset["spec"]
    assert "replicas" not in spec, "the HPA owns replicas; a value here resets it on every apply"
    container = collector_container()
    settings = check_settings(container_env(statefulset, container), "k8s collector")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {t["metadata"]["name"]: t for t in spec["volumeClaimTemplates"]}
    assert mounts.get(str(settings.data_dir)) in claims, "the WAL directory must be on a per-replica claim"
    claim = claims[mounts[str(settings.data_dir)]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert settings.wal_max_bytes < parse_quantity(claim["resources"]["requests"]["storage"]), "WAL cap > its volume"
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain", "scale-down must keep the WAL"
    headless = k8s_object("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert matches(headless["spec"]["selector"], spec["template"]["metadata"]["labels"])


def test_k8s_collector_probes_ports_and_shutdown() -> None:
    container = collector_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    settings = check_settings(container_env(collector_workload(), container), "k8s collector")
    assert list(ports.values()) == [COLLECTOR_PORT] == [settings.port]
    routes = app_routes()
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} must GET {path}"
        assert path in routes
        assert get["port"] in ports or get["port"] == COLLECTOR_PORT
    pod = pod_spec(collector_workload())
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + SHUTDOWN_BUDGET_S
    assert "command" not in container, "the image's ENTRYPOINT serves"
    assert "args" not in container


def test_k8s_pods_run_non_root_read_only_without_service_links(monkeypatch: pytest.MonkeyPatch) -> None:
    uid, _, gid = dockerfile().one("USER").partition(":")
    for workload in workloads():
        pod = pod_spec(workload)
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert str(security["runAsUser"]) == uid
        assert str(security["runAsGroup"]) == gid
        assert pod["enableServiceLinks"] is False, "service links inject <SERVICE>_PORT=tcp://... variables"
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]
            assert container["resources"]["requests"]["cpu"]
            check_settings(container_env(workload, container), f"{workload['metadata']['name']}/{container['name']}")
            entrypoint = container.get("command") or dockerfile().entrypoint
            assert entrypoint[0] in console_scripts()
            run_cli([*entrypoint[1:], *container.get("args", [])], monkeypatch)


def test_k8s_service_names_cannot_shadow_settings() -> None:
    """Were service links on, a Service named `llmpulse` would set LLMPULSE_PORT=tcp://... in every pod."""
    fields = {f"LLMPULSE_{f.upper()}" for f in Settings.model_fields}
    for service in (d for d in k8s_objects() if d["kind"] == "Service"):
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        injected = {f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT", f"{prefix}_PORT"}
        assert not injected & fields, f"Service {service['metadata']['name']} would shadow {injected & fields}"


def test_k8s_collector_anti_affinity_and_spread_select_its_own_pods() -> None:
    pod = pod_spec(collector_workload())
    labels = collector_workload()["spec"]["template"]["metadata"]["labels"]
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        and matches(t["podAffinityTerm"]["labelSelector"], labels)
        for t in terms
    )
    for constraint in pod.get("topologySpreadConstraints") or []:
        assert matches(constraint["labelSelector"], labels)


def test_k8s_service_targets_the_collector_port() -> None:
    service = k8s_object("Service", "llmpulse-collector")
    labels = collector_workload()["spec"]["template"]["metadata"]["labels"]
    assert matches(service["spec"]["selector"], labels)
    container_ports = {p["name"]: p["containerPort"] for p in collector_container()["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["port"] == COLLECTOR_PORT
    target = port["targetPort"]
    assert target in container_ports or target in container_ports.values(), f"targetPort {target}"


def test_k8s_hpa_scales_the_collector_statefulset_on_cpu() -> None:
    hpa = k8s_object("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    workload = collector_workload()
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        workload["apiVersion"],
        workload["kind"],
        workload["metadata"]["name"],
    )
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert collector_container()["resources"]["requests"]["cpu"], "CPU utilisation is relative to the request"


def test_k8s_pdb_and_networkpolicy_select_the_collector() -> None:
    labels = collector_workload()["spec"]["template"]["metadata"]["labels"]
    assert matches(k8s_object("PodDisruptionBudget")["spec"]["selector"], labels)
    policy = k8s_object("NetworkPolicy")
    assert matches(policy["spec"]["podSelector"], labels)
    names = {p["name"] for p in collector_container()["ports"]}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in names or port["port"] == COLLECTOR_PORT


def test_k8s_config_and_secret_hold_valid_settings() -> None:
    config = k8s_object("ConfigMap", "llmpulse-collector")["data"]
    secret = secret_values(k8s_object("Secret", "llmpulse-collector"))
    assert not settings_vars(config).keys() & settings_vars(secret).keys()
    settings = check_settings({**config, **secret}, "configmap + secret")
    assert settings.storage is not None, "replicas share one ClickHouse server"
    assert not settings.embedded
    dsn = urlsplit(settings.storage)
    assert dsn.port == CLICKHOUSE_HTTP_PORT
    assert dsn.path in ("", "/")
    assert dsn.password == "CHANGE_ME", "secret.yaml carries a placeholder, never a real password"
    assert ch_users().find(f"users/{dsn.username}") is not None, "use the user of deploy/clickhouse/users.d"
    assert "storage" not in {k.removeprefix("LLMPULSE_").lower() for k in config}, "the DSN holds a password"
    assert settings.cluster is None, "LLMPULSE_CLUSTER is opt-in (clickhouse-cluster.md)"
    # the commented cluster setting, once uncommented, is valid too
    kwargs: dict[str, Any] = {k.removeprefix("LLMPULSE_").lower(): v for k, v in config.items()}
    assert Settings(**kwargs, cluster="llmpulse").cluster == "llmpulse"


def test_k8s_migrate_job_runs_llmpulse_migrate_with_the_collectors_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    job = k8s_object("Job", "llmpulse-migrate")
    (container,) = pod_spec(job)["containers"]
    assert kustomized_image(container["image"]) == kustomized_image(collector_container()["image"])
    assert container["image"] == collector_container()["image"]
    kind, _ = run_cli([*container["command"][1:], *container.get("args", [])], monkeypatch)
    assert kind == "migrate"
    assert container["envFrom"] == collector_container()["envFrom"], "migrate with the collectors' own settings"
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_k8s_servicemonitor_scrapes_metrics_through_one_service() -> None:
    monitor = k8s_object("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    services = [s for s in k8s_objects() if s["kind"] == "Service"]
    selected = [s for s in services if matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
    assert [s["metadata"]["name"] for s in selected] == ["llmpulse-collector"], "each pod would be scraped twice"
    port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint.get("path", "/metrics") in app_routes()
        assert parse_duration(endpoint["scrapeTimeout"]) <= parse_duration(endpoint["interval"])


# ---------------------------------------------------------------------------------------------------
# every LLMPULSE_* name anywhere in the files above, comments and docs included


def _owned_files() -> Iterator[Path]:
    yield DOCKERFILE
    yield COMPOSE
    yield COMPOSE_DATADOG
    yield CH_CONFIG
    yield CH_USERS
    yield DEPLOY / "README.md"
    yield from sorted(K8S.iterdir())


def test_every_llmpulse_variable_named_in_deploy_files_is_a_setting() -> None:
    fields = {f"LLMPULSE_{f.upper()}" for f in Settings.model_fields}
    for path in _owned_files():
        names = set(re.findall(r"\bLLMPULSE_[A-Z][A-Z0-9_]*\b", path.read_text()))
        unknown = names - fields - set(NOT_YET_SETTINGS)
        assert not unknown, f"{path.relative_to(REPO)} names {sorted(unknown)}, which are not collector settings"
