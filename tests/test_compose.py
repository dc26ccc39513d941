"""docker-compose.yml cannot be run here (no Docker engine), so it is checked against the code:
it parses, every service runs a command our CLI accepts, every variable it sets is one our
settings read, and every long-running service has a healthcheck."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from relayq.cli.parser import build_parser
from relayq.schemas.settings import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OURS = {
    name: s for name, s in COMPOSE["services"].items() if s.get("image", "").startswith("relayq")
}


def known_env_vars() -> set[str]:
    return {env_name(name) for name in Settings.model_fields}


def test_the_compose_file_defines_redis_with_aof_and_our_services() -> None:
    redis = COMPOSE["services"]["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert set(OURS) >= {"chat-worker", "browser-worker", "gateway"}


@pytest.mark.parametrize("service", sorted(OURS))
def test_each_service_runs_a_command_our_cli_accepts(service: str) -> None:
    command = OURS[service]["command"]
    argv = command if isinstance(command, list) else shlex.split(command)
    parsed = build_parser().parse_args(argv)
    assert callable(parsed.handler)


@pytest.mark.parametrize("service", sorted(OURS))
def test_each_service_sets_only_variables_our_settings_read(service: str) -> None:
    env: dict[str, Any] = OURS[service].get("environment", {})
    unknown = sorted(set(env) - known_env_vars())
    assert not unknown, f"{service} sets variables nothing reads: {unknown}"


@pytest.mark.parametrize("service", sorted(set(COMPOSE["services"])))
def test_every_service_has_a_healthcheck(service: str) -> None:
    assert COMPOSE["services"][service].get("healthcheck", {}).get("test")


def test_the_dockerfile_entrypoint_is_our_cli_and_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'ENTRYPOINT \[.*"relayq"\]', dockerfile)
    for package in ("llm", "schemas", "workers", "relayq"):  # relayq/llm etc. link to these
        assert f"COPY {package} ./{package}" in dockerfile


def test_the_readme_shows_how_to_scale_out() -> None:
    assert "docker compose up --scale chat-worker=" in (ROOT / "README.md").read_text()
