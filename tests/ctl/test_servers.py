"""n3ctl with several servers: a block per server, one picked by --server, exit codes."""

from __future__ import annotations

import copy
import time
from typing import Any

from n3d.ctl.fmt import Style
from n3d.ctl.parse import build_parser
from n3d.ctl.render import render_status, status_exit_code
from n3d.ctl.servers import one_server, server_blocks

from . import samples

PLAIN = Style(False)


def block(name: str, **server: Any) -> dict[str, Any]:
    s = samples.STATUS
    found = {**s["server"], "name": name, **server}
    return {**found, "health": s["health"], "resources": s["resources"], "models": s["models"]}


def two_servers(**b: Any) -> dict[str, Any]:
    result = copy.deepcopy(samples.STATUS)
    result["server"]["name"] = "a"
    result["servers"] = [block("a"), block("b", base_url="http://127.0.0.1:11435", **b)]
    return result


def render(result: dict[str, Any]) -> str:
    return render_status(result, now=samples.NOW, style=PLAIN, clock=time.gmtime)


def test_one_server_in_servers_renders_exactly_as_before() -> None:
    one = {**samples.STATUS, "servers": [block("default")]}
    assert render(one) == render(samples.STATUS)


def test_several_servers_show_a_block_each_then_the_daemon_once() -> None:
    text = render(two_servers())
    assert text.startswith("● ollama a\n     Active: running (managed)")
    assert "\n\n● ollama b\n" in text
    assert "     Server: http://127.0.0.1:11435, Ollama 0.5.7\n" in text
    assert text.count("Daemon: n3d") == 1 and text.count("Health: ok") == 2


def test_server_picks_one_block_and_renders_it_as_the_only_server() -> None:
    picked = one_server(two_servers(), "b")
    assert picked is not None and picked["server"]["base_url"] == "http://127.0.0.1:11435"
    assert render(picked).startswith("● ollama - the Ollama server under n3d\n")
    assert one_server(two_servers(), "c") is None


def test_every_server_counts_for_the_exit_code() -> None:
    assert status_exit_code(two_servers()) == 0
    assert status_exit_code(two_servers(state="stopped")) == 3
    picked = one_server(two_servers(state="stopped"), "a")
    assert picked is not None and status_exit_code(picked) == 0


def test_an_older_daemon_without_servers_reads_as_its_one_server() -> None:
    (only,) = server_blocks(samples.STATUS)
    assert only["state"] == "running" and only["health"] == samples.STATUS["health"]


def test_server_is_an_option_of_status_health_and_the_server_commands() -> None:
    parser = build_parser()
    for command in ("status", "health", "start", "stop", "restart"):
        assert parser.parse_args([command, "--server", "b"]).server == "b"
    assert parser.parse_args(["status"]).server is None
