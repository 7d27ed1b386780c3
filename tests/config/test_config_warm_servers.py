"""Which server warms a `[warm] models` entry, and what a reload does to `[[servers]]`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from n3d.config import Settings, default_toml, load_settings
from n3d.config.reload import plan_reload
from n3d.errors import ConfigError

from .conftest import WriteConfig

SERVERS = """\
[[servers]]
name = "gpu0"
port = 11435

[[servers]]
name = "gpu1"
port = 11436
models = ["llama3.1:70b", "phi3"]

[[servers]]
name = "gpu2"
port = 11437
models = ["phi3:latest"]
"""


def load(write_config: WriteConfig, text: str) -> Settings:
    return load_settings(write_config(text), {})


def warmed(s: Settings) -> dict[str, tuple[str, ...]]:
    return {name: s.for_server(name).warm.models for name in s.server_names()}


def test_a_string_goes_to_the_servers_pinning_it_else_to_the_first(
    write_config: WriteConfig,
) -> None:
    warm = '[warm]\nmodels = ["llama3", "phi3", { model = "qwen2:7b", server = "gpu2" }]\n'
    s = load(write_config, warm + SERVERS)
    assert s.warm.models == ("llama3", "phi3", "qwen2:7b")  # every name, as written
    assert s.warm.placed == (("llama3", None), ("phi3", None), ("qwen2:7b", "gpu2"))
    assert warmed(s) == {
        "gpu0": ("llama3",),  # pinned nowhere: the first server
        # phi3 is pinned on gpu1 and (as phi3:latest, the same model) on gpu2;
        # each model once per server, as the warm entry writes it.
        "gpu1": ("phi3", "llama3.1:70b"),
        "gpu2": ("phi3", "qwen2:7b"),
    }
    assert s.for_server("gpu2").warm.placed == (("phi3", None), ("qwen2:7b", "gpu2"))
    assert s.for_server("gpu1").warm.placed == (("phi3", None), ("llama3.1:70b", "gpu1"))
    assert s.for_server("gpu0").warm.keep_alive == s.warm.keep_alive


def test_a_table_names_its_server_even_when_another_pins_the_model(
    write_config: WriteConfig,
) -> None:
    warm = '[warm]\nmodels = [{ model = "llama3.1:70b", server = "gpu0" }, { model = "x" }]\n'
    s = load(write_config, warm + SERVERS)
    assert warmed(s) == {
        "gpu0": ("llama3.1:70b", "x"),
        "gpu1": ("llama3.1:70b", "phi3"),
        "gpu2": ("phi3:latest",),
    }


def test_warm_entries_are_shown_as_written(write_config: WriteConfig) -> None:
    warm = '[warm]\nmodels = ["llama3", { model = "phi3", server = "gpu1" }]\n'
    s = load(write_config, warm + SERVERS)
    assert s.as_dict()["warm"]["models"] == ["llama3", {"model": "phi3", "server": "gpu1"}]
    assert json.loads(json.dumps(s.document()))["values"]["warm"]["models"][1]["server"] == "gpu1"


def test_without_servers_a_table_may_name_default(write_config: WriteConfig) -> None:
    s = load(write_config, '[warm]\nmodels = ["a", { model = "b", server = "default" }]\n')
    assert s.warm.models == ("a", "b")
    assert s.for_server("default") == s


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            '[{ model = "phi3", server = "gpu9" }]',
            r'entry 1 \(phi3\): no server named "gpu9"; the servers are: gpu0, gpu1, gpu2',
        ),
        (
            '["a", { model = "phi3", server = "gpu" }]',
            r'entry 2 \(phi3\): no server named "gpu"; the servers are: gpu0, gpu1, gpu2',
        ),
        ('[{ server = "gpu0" }]', "entry 1: a warm entry table needs a model"),
        ('[{ model = "phi3", srv = "gpu0" }]', "entry 1: unknown key 'srv' in a warm entry"),
        ('[{ model = "bad name" }]', "entry 1: Invalid model name"),
        ('[{ model = "phi3", server = 1 }]', "entry 1: expected a server name"),
        ('["gpu1/phi3:latest:x"]', "entry 1: Invalid model name"),
    ],
)
def test_a_bad_warm_entry_is_refused(write_config: WriteConfig, models: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load(write_config, f"[warm]\nmodels = {models}\n" + SERVERS)
    assert (caught.value.key, caught.value.line) == ("warm.models", 2)


def test_without_servers_a_warm_table_names_only_default(write_config: WriteConfig) -> None:
    with pytest.raises(ConfigError, match='no server named "gpu0"; the servers are: default'):
        load(write_config, '[warm]\nmodels = [{ model = "phi3", server = "gpu0" }]\n')


# -- reload --------------------------------------------------------------------------


def reload(write_config: WriteConfig, before: str, after: str) -> tuple[Settings, Settings]:
    running = load(write_config, before)
    return running, plan_reload(running, load(write_config, after)).effective


TWO = '[[servers]]\nname = "a"\nport = 1001\n[[servers]]\nname = "b"\nport = 1002\n'


@pytest.mark.parametrize(
    "after",
    [
        '[[servers]]\nname = "a"\nport = 1001\n',  # removed
        TWO + '[[servers]]\nname = "c"\nport = 1003\n',  # added
        TWO.replace('"b"', '"bb"'),  # renamed
        TWO.replace("1002", "1012"),  # moved
        TWO.replace('"a"', '"x"').replace('"b"', '"a"').replace('"x"', '"b"'),  # reordered
        "[ollama]\nport = 1001\n",  # back to one server
    ],
)
def test_a_change_to_the_list_of_servers_waits_for_a_restart(
    write_config: WriteConfig, after: str
) -> None:
    running = load(write_config, TWO)
    plan = plan_reload(running, load(write_config, after))
    assert "servers" in plan.needs_restart
    assert plan.effective.pending_restart == plan.needs_restart
    assert plan.effective.server_names() == ("a", "b")
    assert [s.base_url for s in plan.effective.servers] == [s.base_url for s in running.servers]
    assert plan.effective.ollama.base_url == "http://127.0.0.1:1001"
    assert plan.effective.sources["servers"] == running.sources["servers"]
    assert "servers" in plan.effective.as_dict()


def test_servers_from_one_server_wait_too(write_config: WriteConfig) -> None:
    running = load(write_config, "[ollama]\nport = 1001\n")
    plan = plan_reload(running, load(write_config, TWO))
    assert plan.needs_restart == ("servers",)  # gpu a has the address default had
    assert plan.effective.server_names() == ("default",)
    assert "servers" not in plan.effective.as_dict()
    assert "servers" not in plan.effective.sources


def test_env_and_models_apply_at_once(write_config: WriteConfig) -> None:
    after = TWO.replace("port = 1002\n", 'port = 1002\nenv = { A = "1" }\nmodels = ["phi3"]\n')
    plan = plan_reload(
        load(write_config, TWO), load(write_config, after + '[server.env]\nB = "2"\n')
    )
    assert plan.needs_restart == ()
    assert plan.changed == ("server.env", "servers")
    b = plan.effective.for_server("b")
    assert dict(b.server.env) == {"B": "2", "A": "1"}
    assert b.warm.models == ("phi3",)


def test_env_and_models_apply_even_while_the_list_waits(write_config: WriteConfig) -> None:
    after = TWO.replace('"a"\nport = 1001\n', '"a"\nport = 1001\nmodels = ["phi3"]\n')
    after += '[[servers]]\nname = "c"\nport = 1003\n'
    plan = plan_reload(load(write_config, TWO), load(write_config, after))
    assert plan.needs_restart == ("servers",)
    assert plan.effective.for_server("a").warm.models == ("phi3",)
    assert plan.effective.server_names() == ("a", "b")


def test_one_server_reloads_as_before(write_config: WriteConfig) -> None:
    plan = plan_reload(load(write_config, ""), load(write_config, '[server.env]\nA = "1"\n'))
    assert plan.needs_restart == ()
    assert plan.changed == ("server.env",)
    assert dict(plan.effective.servers[0].env) == {"A": "1"}


# -- config init and show ----------------------------------------------------------


def test_init_shows_a_servers_example_that_works_uncommented(write_config: WriteConfig) -> None:
    text = default_toml()
    assert "# [[servers]]\n" in text and "[[servers]]" not in tomllib.loads(text)
    start = text.index("# [[servers]]\n")
    example = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
    s = load(write_config, text[:start] + example + "\n")
    (gpu0,) = s.servers
    assert (gpu0.name, gpu0.base_url, gpu0.models) == (
        "gpu0",
        "http://127.0.0.1:11435",
        ("llama3.1:70b",),
    )
    assert gpu0.env["CUDA_VISIBLE_DEVICES"] == "0"
    assert s.for_server("gpu0").warm.models == ("llama3.1:70b",)


def test_config_show_text_parses_back_with_the_servers(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from n3d.cli.config import add_config_commands, run_config

    path = write_config('[warm]\nmodels = [{ model = "phi3", server = "b" }]\n' + TWO)
    parser = argparse.ArgumentParser(prog="n3d")
    add_config_commands(parser.add_subparsers(dest="command"))
    assert run_config(parser.parse_args(["config", "show", "--config", str(path)]), env={}) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert [s["name"] for s in shown["servers"]] == ["a", "b"]
    assert shown["servers"][1]["base_url"] == "http://127.0.0.1:1002"
    assert shown["warm"]["models"] == [{"model": "phi3", "server": "b"}]
