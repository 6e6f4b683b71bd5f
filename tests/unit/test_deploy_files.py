"""The production deployment files (deploy/, docs/deployment.md): the compose file against the
Compose Specification's JSON schema and against what SkyHive needs of it, the Dockerfile's
essentials (hadolint lints it too, in `make lint`), the API's gunicorn entry point and the
initialisation script. No Docker engine needed: nothing here starts a container.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from skyhive.api.dashboard import VENDOR_FILES
from skyhive.api.wsgi import TrustedProxy, behind_proxy, create
from skyhive.domain.device_access import Service, service_grant
from skyhive.services.device_credentials import write_mosquitto_config
from skyhive.settings import HttpConfig, Settings
from skyhive.supervisor import ROLES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# What the compose file should run of each role (supervisor.ROLES): two gateways (one shared
# subscription), two routine processors (one Kafka group), one of every other role.
INSTANCES = {role: 1 for role in ROLES} | {"gateway": 2, "processor": 2}
API_APP = "skyhive.api.wsgi:create()"
RESTART_POLICIES = {"unless-stopped", "on-failure"}
# A tag that names a release: 8.0.4, 3.11.11-slim-bookworm, 7.2.7-bookworm, 0.1.0.
RELEASE_TAG = re.compile(r"^\d+(\.\d+)+(-[a-z0-9][a-z0-9.-]*)?$")


# -- loading ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: ``${V}``, ``${V:-default}``, ``${V-default}``,
    ``${V:?error}``, ``${V?error}``, and ``$$`` for a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        val = env.get(name)
        if op == ":-":
            return val or arg
        if op == "-":
            return arg if val is None else val
        if op in (":?", "?") and (val is None or (op == ":?" and not val)):
            raise KeyError(f"{name} is required: {arg}")
        return val or ""

    return _VAR.sub(sub, value)


def variables(text: str) -> dict[str, str]:
    """Every variable the compose file interpolates, with its operator."""
    return {m.group(1): m.group(2) or "" for m in _VAR.finditer(text) if m.group(1)}


# Stand-ins for deploy/.env: what a filled-in one gives, so interpolation succeeds.
FAKE_ENV = {
    "MONGO_ROOT_PASSWORD": "root-pw",
    "MONGO_SKYHIVE_PASSWORD": "skyhive-pw",
    "REDIS_PASSWORD": "redis-pw",
}


def environment(service: Mapping[str, Any], env: Mapping[str, str] = FAKE_ENV) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(str(v), env) for k, v in raw.items()}


def image_of(service: Mapping[str, Any]) -> str:
    return interpolate(service["image"], {})


def is_skyhive(service: Mapping[str, Any]) -> bool:
    return image_of(service).startswith("skyhive:")


def instances(service: Mapping[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", service.get("scale", 1)))


def depends(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec["condition"] for name, spec in deps.items()}


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck")
    return bool(check) and not check.get("disable") and bool(check.get("test"))


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Volume mounts of a service: target → source (a volume name or a host path)."""
    out = {}
    for spec in service.get("volumes", []):
        if isinstance(spec, str):
            source, target = spec.split(":")[:2]
        else:
            source, target = spec["source"], spec["target"]
        out[target] = source
    return out


def named(source: str) -> bool:
    return not source.startswith(("/", ".", "~"))


def role_of(service: Mapping[str, Any]) -> str | None:
    """The supervisor role a service runs, from its command; None for anything else."""
    command = tuple(service.get("command") or ())
    if command[:1] == ("skyhive",):
        return {args: role for role, args in ROLES.items()}.get(command[1:])
    if command[:1] == ("gunicorn",) and command[-1:] == (API_APP,):
        return "api"
    return None


# -- the compose file: schema ------------------------------------------------------------------


def compose_validator() -> jsonschema.Draft201909Validator:
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in compose_validator().iter_errors(compose)
    ]
    assert errors == []


def test_the_schema_refuses_what_compose_would_refuse(compose: dict[str, Any]) -> None:
    """The validation is not vacuous: a misspelt key, a wrong type and an unknown condition
    are each an error."""
    validator = compose_validator()
    for path, bad in (
        (("services", "redis", "restrat"), "always"),
        (("services", "redis", "ports"), "6379"),
        (("services", "api", "depends_on", "redis", "condition"), "service_ready"),
    ):
        doc = json.loads(json.dumps(compose))
        where = doc
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = bad
        assert list(validator.iter_errors(doc)), path


# -- the compose file: what SkyHive needs ------------------------------------------------------


def test_every_role_runs_with_its_exact_command(services: dict[str, dict[str, Any]]) -> None:
    found: Counter[str] = Counter()
    for svc in services.values():
        role = role_of(svc)
        if role is not None:
            found[role] += instances(svc)
    assert found == INSTANCES
    # A SkyHive service that runs `skyhive ...` runs a role or one of the two set-up jobs.
    jobs = {("broker", "mosquitto-config", "--out", "/mosquitto/auth")}
    for name, svc in services.items():
        command = tuple(svc.get("command") or ())
        if command[:1] == ("skyhive",):
            assert role_of(svc) is not None or command[1:] in jobs, name


def test_every_service_is_health_checked_or_waits_for_a_healthy_one(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        deps = depends(svc)
        assert set(deps) <= set(services), name
        healthy = [d for d, condition in deps.items() if condition == "service_healthy"]
        assert has_healthcheck(svc) or healthy, name
        for dep, condition in deps.items():
            # service_healthy on a service without a check would wait for ever.
            if condition == "service_healthy":
                assert has_healthcheck(services[dep]), f"{name} waits for {dep}"
            # A job waited for must stop once done: unless-stopped would run it again.
            if condition == "service_completed_successfully":
                assert services[dep]["restart"] == "on-failure", dep
                assert "ports" not in services[dep], dep


def test_restart_policies_and_roles_without_the_api_probe(
    services: dict[str, dict[str, Any]],
) -> None:
    jobs = {d for svc in services.values() for d, c in depends(svc).items() if "completed" in c}
    assert jobs == {"mongo-init", "init", "mosquitto-config"}
    for name, svc in services.items():
        assert svc.get("restart") in RESTART_POLICIES, name
        assert (svc["restart"] == "on-failure") == (name in jobs), name
        # The image's health check is the API's /healthz: every other SkyHive container turns
        # it off (or it would be "unhealthy" for ever) and the API declares its own.
        if is_skyhive(svc):
            disabled = bool(svc.get("healthcheck", {}).get("disable"))
            assert disabled == (role_of(svc) != "api"), name
    api = services["api"]["healthcheck"]["test"]
    assert "http://127.0.0.1:8080/healthz" in " ".join(api)


def test_images_are_pinned_to_releases(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = image_of(svc)
        _, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and RELEASE_TAG.match(tag), f"{name}: {image}"
    skyhive = {image_of(s) for s in services.values() if is_skyhive(s)}
    assert skyhive == {f"skyhive:{VERSION}"}
    assert f"SKYHIVE_IMAGE=skyhive:{VERSION}" in (DEPLOY / ".env.example").read_text()


def test_state_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["volumes"])
    used = {source for svc in services.values() for source in mounts(svc).values() if named(source)}
    assert used == declared
    data_dirs = {
        "mongo-1": "/data/db",
        "mongo-2": "/data/db",
        "mongo-3": "/data/db",
        "redis": "/data",
        "kafka": environment(services["kafka"])["KAFKA_LOG_DIRS"],
        "mosquitto": mosquitto_conf()["persistence_location"][0].rstrip("/"),
    }
    for name, path in data_dirs.items():
        assert named(mounts(services[name]).get(path, "/")), f"{name}: {path}"
    assert "--appendonly yes" in " ".join(services["redis"]["command"])


def settings_field(name: str) -> bool:
    """Whether ``SKYHIVE_A__B`` names a field of Settings (``a``, then ``b`` of its model)."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("SKYHIVE_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        kind = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
                return False
            model = kind
    return True


def test_skyhive_settings_are_real_and_point_at_the_services(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mongo_members = {f"{n}:27017" for n in services if re.fullmatch(r"mongo-\d", n)}
    assert len(mongo_members) == 3
    for name, svc in services.items():
        if not is_skyhive(svc):
            continue
        env = environment(svc)
        names = [k for k in env if k.startswith("SKYHIVE_")]
        # Settings ignores unknown variables: a misspelt one would silently do nothing.
        assert [k for k in names if not settings_field(k)] == [], name
        for key in list(os.environ):
            if key.startswith("SKYHIVE_"):
                monkeypatch.delenv(key)
        for key in names:
            monkeypatch.setenv(key, env[key])
        Settings()  # the values parse (types, JSON, ranges)
        mongo = urlsplit(env["SKYHIVE_MONGODB_URI"])
        assert set(mongo.netloc.rpartition("@")[2].split(",")) == mongo_members, name
        query = parse_qs(mongo.query)
        assert query["replicaSet"] == ["rs0"] and query["w"] == ["majority"], name
        assert urlsplit(env["SKYHIVE_REDIS_URL"]).hostname == "redis", name
        assert env["SKYHIVE_MQTT_URL"] == "mqtt://mosquitto:1883", name
        assert env["SKYHIVE_INSECURE_DEVICES"] == "false", name
    for host in ("kafka", "redis", "mosquitto"):
        assert host in services


def test_the_secrets_come_from_the_env_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    used = variables(text)
    example = (DEPLOY / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert set(used) <= listed
    # Passwords have no default: compose refuses to start without them.
    for name in ("MONGO_ROOT_PASSWORD", "MONGO_SKYHIVE_PASSWORD", "REDIS_PASSWORD"):
        assert used[name] == ":?", name
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert "/.env" in ignored and "/secrets/" in ignored


def test_gateways_share_the_drones_topics_under_their_own_sessions(
    services: dict[str, dict[str, Any]],
) -> None:
    gateways = {n: environment(s) for n, s in services.items() if role_of(s) == "gateway"}
    client_ids = [env["SKYHIVE_GATEWAY_CLIENT_ID"] for env in gateways.values()]
    assert len(set(client_ids)) == len(client_ids) == 2
    # One shared subscription group: Mosquitto hands each message to one member. The
    # gateway's ACL lets it subscribe so.
    (group,) = {env["SKYHIVE_GATEWAY_SHARE_GROUP"] for env in gateways.values()}
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", group)
    grant = service_grant(Service.gateway)
    for field in ("telemetry_topic", "events_topic"):
        # The drones' own topics, shared: `$share/<group>/skyhive/drones/+/telemetry`.
        assert all(f"SKYHIVE_{field.upper()}" not in env for env in gateways.values())
        topic = f"$share/{group}/{Settings.model_fields[field].default}"
        assert grant.may_subscribe(topic), topic
    for name, svc in services.items():
        uses_login = role_of(svc) in ("gateway", "dispatcher")
        secrets = mounts(svc).get("/var/lib/skyhive/secrets")
        assert (secrets == "skyhive-secrets") == (uses_login or name == "init"), name


# -- the servers' own configuration ------------------------------------------------------------


def mosquitto_conf() -> dict[str, list[str]]:
    """mosquitto.conf's options in order: name → values (each line's rest)."""
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def mosquitto_lines() -> list[str]:
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_mosquitto_reads_the_files_skyhive_generates(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    conf = mosquitto_conf()
    lines = mosquitto_lines()
    (auth_dir,) = conf["include_dir"]
    # per_listener_settings (in the included skyhive.conf) must come before any listener.
    first_listener = next(i for i, ln in enumerate(lines) if ln.startswith("listener "))
    assert lines.index(f"include_dir {auth_dir}") < first_listener
    job, broker = services["mosquitto-config"], services["mosquitto"]
    assert job["command"][-2:] == ["--out", auth_dir]
    assert mounts(job)[auth_dir] == mounts(broker)[auth_dir] == "mosquitto-auth"
    # Written as Mosquitto's own user (uid 1883 in eclipse-mosquitto), into a volume whose
    # mount point the image gives to that user.
    assert job["user"] == "1883:1883"
    assert re.search(rf"install -d -o 1883 -g 1883 -m 0700 {auth_dir}\b", DOCKERFILE.read_text())
    # What the job writes: one *.conf for include_dir, naming its two files in that directory
    # (password and ACL files must not end in .conf, or Mosquitto would read them as config).
    store = SimpleNamespace(credentials=SimpleNamespace(active=list))
    files = write_mosquitto_config(store, tmp_path)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".conf") == ["skyhive.conf"]
    generated = files.conf.read_text()
    assert f"password_file {files.password_file.resolve()}" in generated
    assert f"acl_file {files.acl_file.resolve()}" in generated
    assert files.password_file.parent == files.acl_file.parent == tmp_path
    assert "allow_anonymous false" in generated


def test_mosquitto_listens_for_services_inside_and_drones_over_tls(
    services: dict[str, dict[str, Any]],
) -> None:
    conf = mosquitto_conf()
    assert conf["listener"] == ["1883", "8883"]
    broker = services["mosquitto"]
    assert broker["ports"] == ["8883:8883"]  # 1883, plain MQTT, stays on the compose network
    command = broker["command"][-1]
    for option in ("certfile", "keyfile", "cafile"):
        (path,) = conf[option]
        assert path.startswith("/mosquitto/certs/") and Path(path).name in command, option
    config_path = command.split(" -c ")[-1].strip()
    assert mounts(broker)[config_path] == "./mosquitto/mosquitto.conf"
    assert "/docker-entrypoint.sh /usr/sbin/mosquitto" in command


def test_the_replica_set_is_one_name_and_three_members(
    services: dict[str, dict[str, Any]],
) -> None:
    script = (DEPLOY / "mongo" / "init-replica-set.js").read_text()
    members = set(re.findall(r'host: "(mongo-\d:27017)"', script))
    assert members == {"mongo-1:27017", "mongo-2:27017", "mongo-3:27017"}
    assert 'rs.initiate({ _id: "rs0", members })' in script
    for name in ("mongo-1", "mongo-2", "mongo-3"):
        command = " ".join(services[name]["command"])
        assert "--replSet rs0" in command and "--keyFile" in command, name
        assert services[name]["secrets"] == ["mongo-keyfile"], name
        # The root user on the member rs.initiate() runs on; the others copy it when they join.
        has_root = "MONGO_INITDB_ROOT_PASSWORD" in services[name]["environment"]
        assert has_root == (name == "mongo-1"), name
    assert "--host mongo-1" in services["mongo-init"]["command"][-1]
    init = services["mongo-init"]
    file_arg = re.search(r"--file (\S+)", init["command"][-1])
    assert file_arg is not None
    assert mounts(init)[file_arg.group(1)] == "./mongo/init-replica-set.js"


def test_the_replica_set_script_is_javascript() -> None:
    """mongosh runs it; node at least parses it (node is there wherever `make install`
    vendored the dashboard's assets)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = DEPLOY / "mongo" / "init-replica-set.js"
    done = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_kafka_is_the_bus_the_settings_name(services: dict[str, dict[str, Any]]) -> None:
    kafka = environment(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # SkyHive creates its topics
    env = environment(services["processor-1"])
    assert env["SKYHIVE_BUS"] == "kafka" and env["SKYHIVE_KAFKA__BOOTSTRAP"] == "kafka:9092"
    # Topics SkyHive makes get the partitions the broker would give its own.
    assert kafka["KAFKA_NUM_PARTITIONS"] == env["SKYHIVE_BUS_PARTITIONS"]
    # One broker: nothing may ask for more replicas than it has.
    replication = {v for k, v in kafka.items() if k.endswith(("REPLICATION_FACTOR", "ISR"))}
    assert "SKYHIVE_KAFKA__REPLICATION" not in env
    assert replication == {"1"} == {str(Settings.model_fields["kafka"].default.replication)}
    assert mounts(services["kafka"])[kafka["KAFKA_LOG_DIRS"]] == "kafka-data"


# -- the Dockerfile ----------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        word, _, rest = whole.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def stages(dockerfile: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in dockerfile:
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def test_base_images_are_pinned(dockerfile: list[tuple[str, str]]) -> None:
    bases = [args.split()[0] for ins, args in dockerfile if ins == "FROM"]
    assert len(bases) == 3
    for base in bases:
        _, sep, tag = base.rpartition(":")
        assert sep and RELEASE_TAG.match(tag), base
    assert bases[1] == bases[2] and bases[2].startswith("python:3.11.")


def test_the_image_runs_unprivileged_with_no_secret_inside(
    dockerfile: list[tuple[str, str]],
) -> None:
    final = stages(dockerfile)[-1]
    users = [args for ins, args in final if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(ins == "HEALTHCHECK" for ins, _ in final)
    for ins, args in dockerfile:
        assert ins != "ADD", f"ADD {args}: COPY, and nothing fetched by URL"
        if ins == "RUN" and "apt-get install" in args:
            assert "rm -rf /var/lib/apt/lists" in args, args
        if ins in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY)\w*=", args, re.I), args
    ignore = [ln for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if ln]
    rules = [ln for ln in ignore if not ln.startswith("#")]
    assert rules[0] == "*"  # everything is left out, then only what the build needs let in
    allowed = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    for ins, args in dockerfile:
        if ins == "COPY" and "--from=" not in args:
            *sources, _ = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                assert any(source == a or source.startswith(a + "/") for a in allowed), source


def test_the_image_installs_this_version_with_the_deploy_extra(
    dockerfile: list[tuple[str, str]],
) -> None:
    runs = " ".join(args for ins, args in dockerfile if ins == "RUN")
    assert '".[deploy]"' in runs
    assert f'"skyhive[deploy]=={VERSION}"' in runs
    assert "--no-index" in runs and "--no-cache-dir" in runs
    copies = [args for ins, args in dockerfile if ins == "COPY"]
    assert "deploy/init_stack.py /opt/skyhive/init_stack.py" in copies


def test_the_image_builds_the_dashboard_assets_as_make_install_does(
    dockerfile: list[tuple[str, str]],
) -> None:
    makefile = (ROOT / "Makefile").read_text()
    make_sources = {s.removeprefix("web/") for s in re.findall(r"web/node_modules/\S+", makefile)}
    assets = " ".join(args for ins, args in stages(dockerfile)[0] if ins == "RUN")
    docker_sources = set(re.findall(r"(?<![\w/])node_modules/\S+", assets))
    assert docker_sources == make_sources
    assert "npm ci" in assets
    for name in VENDOR_FILES:  # what api/dashboard.py needs, under the vendor folder
        path = Path(name).relative_to("vendor")
        assert f"/vendor/{path.parent}/" in assets and path.name in assets, name
    copied = [args for ins, args in dockerfile if ins == "COPY" and "--from=assets" in args]
    assert copied == ["--from=assets /vendor ./src/skyhive/dashboard/static/vendor"]
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "dashboard/static/vendor/**/*" in package_data["package-data"]["skyhive"]


# -- the API under gunicorn ---------------------------------------------------------------------


def test_the_image_and_the_compose_file_run_the_same_api_command(
    dockerfile: list[tuple[str, str]], services: dict[str, dict[str, Any]]
) -> None:
    (cmd,) = [args for ins, args in stages(dockerfile)[-1] if ins == "CMD"]
    assert json.loads(cmd) == services["api"]["command"]
    assert services["api"]["command"][-1] == API_APP
    assert "--preload" not in cmd  # the app (and its clients) built after the fork
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]


def test_gunicorn_loads_the_api_as_the_compose_file_runs_it(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The compose file's command, environment and all, with gunicorn's --check-config: the
    app is built (nothing connects: the hosts do not even resolve here) and gunicorn exits."""
    api = services["api"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYHIVE_")}
    env |= environment(api) | {"SKYHIVE_DATA_DIR": str(tmp_path)}
    command = api["command"]
    argv = [sys.executable, "-m", "gunicorn", *command[1:-1], "--check-config", command[-1]]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_wsgi_app_serves_without_reaching_any_server(tmp_path: Path) -> None:
    settings = Settings(
        mongodb_uri="mongodb://skyhive-test.invalid:27017/?serverSelectionTimeoutMS=100",
        redis_url="redis://skyhive-test.invalid:6379/0",
        mqtt_url="mqtt://skyhive-test.invalid:1883",
        data_dir=tmp_path,
    )
    app = create(settings)
    assert not isinstance(app.wsgi_app, TrustedProxy)
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()]


def _call(app: Callable[..., Iterable[bytes]], peer: str, **headers: str) -> str:
    environ = {
        "REMOTE_ADDR": peer,
        "wsgi.url_scheme": "http",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "api",
        "SERVER_PORT": "8080",
        "HTTP_HOST": "api:8080",
    } | {f"HTTP_{k.upper()}": v for k, v in headers.items()}
    return b"".join(app(environ, lambda *_: None)).decode()


def test_forwarding_headers_are_believed_from_the_trusted_proxy_only() -> None:
    forwarded = {"x_forwarded_for": "203.0.113.7", "x_forwarded_proto": "https"}
    app = TrustedProxy(_echo, "172.18.0.9")
    assert _call(app, "172.18.0.9", **forwarded) == "203.0.113.7 https"
    assert _call(app, "172.18.0.66", **forwarded) == "172.18.0.66 http"
    assert _call(TrustedProxy(_echo, "*"), "10.0.0.1", **forwarded) == "203.0.113.7 https"
    two_hops = {"x_forwarded_for": "203.0.113.7, 198.51.100.2"}
    assert _call(TrustedProxy(_echo, "*", 2), "10.0.0.1", **two_hops).startswith("203.0.113.7")


def test_behind_proxy_wraps_only_when_a_proxy_is_configured() -> None:
    class App(SimpleNamespace):
        wsgi_app: Any

    plain = App(wsgi_app=_echo)
    behind_proxy(plain, HttpConfig())  # type: ignore[arg-type]
    assert plain.wsgi_app is _echo
    proxied = App(wsgi_app=_echo)
    behind_proxy(proxied, HttpConfig(trusted_proxy="172.18.0.9"))  # type: ignore[arg-type]
    assert isinstance(proxied.wsgi_app, TrustedProxy)


# -- the initialisation job ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def init_stack() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("init_stack", DEPLOY / "init_stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_init_retries_until_the_servers_answer(init_stack: ModuleType, tmp_path: Path) -> None:
    clock, tries = FakeClock(), []

    def step(_clients: object, _settings: Settings) -> list[str]:
        tries.append(clock.now)
        if len(tries) < 3:
            raise ConnectionError("no primary yet")
        return ["skyhive.dispatcher", "skyhive.gateway"]

    settings = Settings(data_dir=tmp_path)
    assert init_stack.run(settings, 60, 2.0, step, clock.sleep, clock) == 0
    assert tries == [0.0, 2.0, 4.0] and clock.slept == [2.0, 2.0]


def test_init_gives_up_after_its_wait(init_stack: ModuleType, tmp_path: Path) -> None:
    clock = FakeClock()

    def step(_clients: object, _settings: Settings) -> list[str]:
        raise ConnectionError("MongoDB is not there")

    assert init_stack.run(Settings(data_dir=tmp_path), 10, 2.0, step, clock.sleep, clock) == 1
    assert clock.now >= 10


def test_init_bootstraps_then_writes_the_service_logins(
    init_stack: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(init_stack, "bootstrap", lambda clients: calls.append(("boot", clients)))

    def logins(clients: object, path: Path) -> dict[Service, Any]:
        calls.append(("logins", path))
        return {s: SimpleNamespace(username=f"skyhive.{s.value}") for s in Service}

    monkeypatch.setattr(init_stack, "ensure_service_credentials", logins)
    settings = Settings(data_dir=tmp_path, mqtt_services_file=tmp_path / "s" / "mqtt.json")
    clients = object()
    users = init_stack.initialise(clients, settings)
    assert calls == [("boot", clients), ("logins", tmp_path / "s" / "mqtt.json")]
    assert users == ["skyhive.dispatcher", "skyhive.gateway"]


def test_the_init_service_runs_the_script_the_image_holds(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["init"]["command"] == ["python", "/opt/skyhive/init_stack.py"]
    env = environment(services["init"])
    assert mounts(services["init"])["/var/lib/skyhive/secrets"] == "skyhive-secrets"
    assert Path(env["SKYHIVE_MQTT_SERVICES_FILE"]).parent == Path("/var/lib/skyhive/secrets")


# -- the documentation ---------------------------------------------------------------------------


def test_the_deployment_guide_covers_every_service(services: dict[str, dict[str, Any]]) -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert [name for name in services if f"`{name}`" not in guide] == []
    assert "](docs/deployment.md)" in (ROOT / "README.md").read_text()
