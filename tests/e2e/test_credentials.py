"""Credentials in `base_url` connect but are never shown: log, status, config, errors, n3ctl."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from n3d.client import RpcError

from .conftest import Daemon

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-pw"
N3CTL = Path(sys.executable).parent / "n3ctl"


def _run(*argv: str, env: dict[str, str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    return done.stdout + done.stderr


def test_credentials_in_base_url_never_appear_in_logs_status_config_or_errors(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d = daemon_factory()
    d.write_config({"ollama": {"base_url": f"http://n3user:{SECRET}@127.0.0.1:{d.port}"}})
    d.start().wait_ready()  # the real URL connects: health checks pass through it
    shown = f"http://***@127.0.0.1:{d.port}"
    seen: list[str] = []

    status = d.call("status")
    assert status["server"]["base_url"] == shown
    config = d.call("config.get")
    assert config["values"]["ollama"]["base_url"] == shown
    seen += [json.dumps(status), json.dumps(config), json.dumps(d.call("health", {"force": True}))]

    with pytest.raises(RpcError) as missing:  # an error that names the server
        d.call("models.delete", {"model": "no-such-model"})
    assert missing.value.data["base_url"] == shown
    seen += [str(missing.value), json.dumps(missing.value.data)]

    for argv in (["status"], ["--json", "status"], ["rm", "no-such-model"]):
        seen.append(_run(str(N3CTL), *argv, env=d.env))
    assert f"Server: {shown}" in seen[-1]
    for argv in (["config", "show"], ["config", "show", "--json"]):
        seen.append(
            _run(sys.executable, "-m", "n3d", *argv, "--config", str(d.config_path), env=d.env)
        )
    assert shown in seen[-1]

    d.call("server.stop")  # now Ollama is unreachable: those errors name the server too
    with pytest.raises(RpcError) as unreachable:
        d.call("models.list", {"refresh": True})
    seen += [str(unreachable.value), json.dumps(unreachable.value.data)]
    d.call("server.start")

    for text in seen:
        assert SECRET not in text and "n3user" not in text, text
    assert d.events("n3d.starting")[0]["base_url"] == shown  # named, redacted
    log = "\n".join(d.log_lines())
    assert SECRET not in log and "n3user" not in log and SECRET not in d.stderr()
