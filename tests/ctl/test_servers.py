"""n3ctl with several servers: a block per server, one picked by --server, exit codes,
and every server's models and warm entries in one table with a SERVER column."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest

from n3d.ctl.fmt import Style
from n3d.ctl.parse import build_parser
from n3d.ctl.render import render_status, status_exit_code
from n3d.ctl.servers import one_server, server_blocks
from n3d.ctl.tables import render_loaded, render_models, render_warm

from . import samples
from .conftest import Run
from .fake_daemon import FakeDaemon

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


def test_each_server_block_names_its_own_few_models() -> None:
    result = two_servers()
    names = {"loaded_names": ["phi3:latest"], "warm_names": ["phi3:latest", "qwen2:0.5b"]}
    result["servers"][1]["models"] = {"installed": 2, "loaded": 1, "warm": 2, **names}
    b = render(result).split("● ollama b\n")[1]
    assert "     Models: 2 installed; 1 loaded: phi3:latest\n" in b
    assert "       Warm: phi3:latest (loaded), qwen2:0.5b\n" in b


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


def _on(rows: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    """``rows`` spread over ``names`` in turn, as a merged list of several servers has them."""
    return [{**row, "server": names[i % len(names)]} for i, row in enumerate(rows)]


RENDERERS: list[tuple[Any, dict[str, Any]]] = [
    (render_models, samples.MODELS),
    (render_loaded, samples.LOADED),
    (render_warm, samples.WARM),
]


@pytest.mark.parametrize(("render_list", "sample"), RENDERERS)
def test_one_servers_list_is_the_table_it_always_was(render_list: Any, sample: Any) -> None:
    before = render_list(sample, now=samples.NOW, style=PLAIN)
    rows = [{**row, "server": "gpu0", "servers": ["gpu0"]} for row in sample["models"]]
    named = {**sample, "models": rows, "server": "gpu0", "servers": ["gpu0"]}
    assert render_list(named, now=samples.NOW, style=PLAIN) == before


def test_every_servers_warm_entries_get_a_server_column_first() -> None:
    merged = {"models": _on(samples.WARM["models"], "gpu0", "gpu1"), "servers": ["gpu0", "gpu1"]}
    assert render_warm(merged, now=samples.NOW, style=PLAIN) == (
        "SERVER   NAME         KEEP ALIVE   LOADED   UNTIL     LAST WARMED\n"
        "gpu0     llama3:8b    forever      yes      forever   10 minutes ago\n"
        "gpu1     qwen2:0.5b   10m          no       -         -"
    )


def test_loaded_models_of_several_servers_name_their_server() -> None:
    merged = {"models": _on(samples.LOADED["models"], "a", "b"), "server": "a"}
    lines = render_loaded(merged, now=samples.NOW, style=PLAIN).splitlines()
    assert lines[0].split()[:2] == ["SERVER", "NAME"]
    assert [line.split()[:2] for line in lines[1:]] == [["a", "llama3:8b"], ["b", "qwen2:0.5b"]]


def test_an_installed_model_lists_every_server_that_has_it() -> None:
    rows = [{**row, "servers": ["a", "b"]} for row in samples.MODELS["models"][:1]]
    rows += [{**row, "servers": ["c"]} for row in samples.MODELS["models"][1:]]
    lines = render_models({**samples.MODELS, "models": rows}, now=samples.NOW, style=PLAIN)
    assert [line.split()[:2] for line in lines.splitlines()] == [
        ["SERVER", "NAME"],
        ["a,b", "llama3:8b"],
        ["c", "qwen2:0.5b"],
    ]


def test_several_servers_with_models_on_one_still_say_where() -> None:
    only_a = [{**row, "servers": ["a"]} for row in samples.MODELS["models"]]
    text = render_models(
        {**samples.MODELS, "models": only_a, "servers": ["a", "b"]}, now=samples.NOW, style=PLAIN
    )
    assert text.startswith("SERVER   NAME")


ARGV_PARAMS: list[tuple[list[str], str, dict[str, Any]]] = [
    (["models", "--server", "b"], "models.list", {"server": "b"}),
    (["models", "--refresh", "--server", "b"], "models.list", {"refresh": True, "server": "b"}),
    (["models", "--loaded", "--server", "b"], "models.loaded", {"server": "b"}),
    (["rm", "llama3:8b", "--server", "b"], "models.delete", {"model": "llama3:8b", "server": "b"}),
    (["warm", "--server", "b"], "warm.list", {"server": "b"}),
    (["warm", "--server", "b", "list"], "warm.list", {"server": "b"}),
    (["warm", "list", "--server", "b"], "warm.list", {"server": "b"}),
    (["warm", "add", "qwen2", "--server", "b"], "warm.add", {"model": "qwen2", "server": "b"}),
    (["warm", "--server", "b", "rm", "qwen2"], "warm.remove", {"model": "qwen2", "server": "b"}),
]


@pytest.mark.parametrize(("argv", "method", "params"), ARGV_PARAMS, ids=lambda v: str(v))
def test_server_option_reaches_the_daemon(
    argv: list[str],
    method: str,
    params: dict[str, Any],
    ctl: Callable[..., Run],
    fake: FakeDaemon,
) -> None:
    result = ctl(*argv)
    assert result.code == 0, result.err
    assert fake.calls == [(method, params)]


def test_pull_into_one_server(ctl: Callable[..., Run], fake: FakeDaemon) -> None:
    result = ctl("pull", "llama3:8b", "--server", "b")
    assert result.code == 0, result.err
    method, params = fake.calls[0]
    assert method == "models.pull" and params["server"] == "b" and params["model"] == "llama3:8b"


def test_warm_without_server_shows_every_servers_entries(
    ctl: Callable[..., Run], fake: FakeDaemon
) -> None:
    merged = {"models": _on(samples.WARM["models"], "gpu0", "gpu1"), "servers": ["gpu0", "gpu1"]}
    fake.handlers["warm.list"] = lambda p, s: merged
    result = ctl("warm")
    assert result.code == 0, result.err
    assert result.out.splitlines()[1].startswith("gpu0     llama3:8b ")
    assert fake.calls == [("warm.list", {})]
