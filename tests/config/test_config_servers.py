"""`[[servers]]`: valid configs, each refusal and its message, and one server's view."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from n3d.config import ServerSpec, Settings, load_settings
from n3d.config.servers import ENTRY_KEYS
from n3d.errors import ConfigError

from .conftest import WriteConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

TWO = """\
[server.env]
OLLAMA_MODELS = "/data/models"
OLLAMA_KEEP_ALIVE = "10m"

[[servers]]
name = "gpu0"
port = 11435
env = { CUDA_VISIBLE_DEVICES = "GPU-1f2e", OLLAMA_KEEP_ALIVE = "1h" }

[[servers]]
name = "gpu1"
base_url = "http://127.0.0.1:11436/"
models = ["llama3.1:70b", "qwen2.5:32b"]
"""


def load(write_config: WriteConfig, text: str, env: dict[str, str] | None = None) -> Settings:
    return load_settings(write_config(text), env or {})


def refused(write_config: WriteConfig, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(write_config, text)
    return caught.value


def test_without_servers_there_is_one_server_named_default(write_config: WriteConfig) -> None:
    s = load(write_config, '[ollama]\nport = 11500\n[server.env]\nA = "1"\n')
    assert s.servers == (
        ServerSpec("default", "http://127.0.0.1:11500", {"A": "1"}, (), "[ollama]"),
    )
    assert s.server_names() == ("default",)
    assert s.for_server("default") == s
    assert "servers" not in s.as_dict() and "servers" not in s.sources


def test_without_servers_the_environment_still_names_the_server(
    write_config: WriteConfig,
) -> None:
    s = load(write_config, "", {"OLLAMA_HOST": "0.0.0.0:11600"})
    assert [spec.base_url for spec in s.servers] == ["http://127.0.0.1:11600"]
    assert s.warnings == ()


def test_each_entry_is_one_server_with_its_address_env_and_models(
    write_config: WriteConfig,
) -> None:
    path = write_config(TWO)
    s = load_settings(path, {})
    gpu0, gpu1 = s.servers
    assert gpu0 == ServerSpec(
        name="gpu0",
        base_url="http://127.0.0.1:11435",  # port = N
        env={
            "OLLAMA_MODELS": "/data/models",
            "OLLAMA_KEEP_ALIVE": "1h",  # the entry's env wins over [server].env
            "CUDA_VISIBLE_DEVICES": "GPU-1f2e",
        },
        models=(),
        source="[[servers]] #1 (gpu0)",
    )
    assert gpu1.base_url == "http://127.0.0.1:11436"  # checked like [ollama] base_url
    assert dict(gpu1.env) == {"OLLAMA_MODELS": "/data/models", "OLLAMA_KEEP_ALIVE": "10m"}
    assert gpu1.models == ("llama3.1:70b", "qwen2.5:32b")
    assert gpu1.source == "[[servers]] #2 (gpu1)"
    assert s.server_names() == ("gpu0", "gpu1")
    # The first server is the one `ollama.base_url` names, for compatibility.
    assert s.ollama.base_url == "http://127.0.0.1:11435"
    assert s.sources["ollama.base_url"] == f"file:{path} ([[servers]])"
    assert s.sources["servers"] == f"file:{path}"
    with pytest.raises(TypeError):
        gpu0.env["A"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu0.name = "x"  # type: ignore[misc]


def test_one_server_sees_its_own_address_and_env(write_config: WriteConfig) -> None:
    s = load(write_config, TWO)
    gpu1 = s.for_server("gpu1")
    assert gpu1.ollama.base_url == "http://127.0.0.1:11436"
    assert gpu1.server.env == s.servers[1].env
    assert gpu1.servers == s.servers  # the list is the same from every view
    assert (gpu1.restart, gpu1.liveness, gpu1.proxy) == (s.restart, s.liveness, s.proxy)
    assert dataclasses.replace(gpu1.server, env=s.server.env) == s.server
    with pytest.raises(KeyError):
        s.for_server("gpu2")
    with pytest.raises(KeyError):
        s.for_server("default")  # only without [[servers]]


def test_show_lists_the_servers_as_tables(write_config: WriteConfig) -> None:
    shown = load(write_config, TWO).as_dict()["servers"]
    assert shown == [
        {
            "name": "gpu0",
            "base_url": "http://127.0.0.1:11435",
            "env": {
                "OLLAMA_MODELS": "/data/models",
                "OLLAMA_KEEP_ALIVE": "1h",
                "CUDA_VISIBLE_DEVICES": "GPU-1f2e",
            },
            "models": [],
        },
        {
            "name": "gpu1",
            "base_url": "http://127.0.0.1:11436",
            "env": {"OLLAMA_MODELS": "/data/models", "OLLAMA_KEEP_ALIVE": "10m"},
            "models": ["llama3.1:70b", "qwen2.5:32b"],
        },
    ]


def test_credentials_in_a_server_address_are_not_shown(write_config: WriteConfig) -> None:
    s = load(write_config, '[[servers]]\nname = "a"\nbase_url = "https://u:secret@h:8443"\n')
    assert s.servers[0].base_url == "https://u:secret@h:8443"
    assert "secret" not in str(s.as_dict()["servers"])


ONE = '[[servers]]\nname = "gpu0"\nport = 11435\n'

# (the file, the key the error names, its line, what the message says)
REFUSALS: list[tuple[str, str, int, str]] = [
    (
        "[[servers]]\nport = 11435\n",
        "servers.name",
        1,
        r"#1: every \[\[servers\]\] entry needs a name",
    ),
    (
        '[[servers]]\nname = "GPU 0"\nport = 11435\n',
        "servers.name",
        2,
        r'#1: expected a name of lowercase letters, digits and "-" like "gpu0", '
        'got the string "GPU 0"',
    ),
    ("[[servers]]\nname = 7\nport = 1\n", "servers.name", 2, "got the integer 7"),
    (
        ONE + '[[servers]]\nname = "gpu0"\nport = 11436\n',
        "servers.name",
        5,
        r'#2 \(gpu0\): the name "gpu0" is already used by \[\[servers\]\] #1 \(gpu0\)',
    ),
    (
        '[[servers]]\nname = "gpu0"\n',
        "servers",
        1,
        r"\(gpu0\): expected exactly one of base_url = .* or port = 11435; got neither",
    ),
    (
        '[[servers]]\nname = "gpu0"\nport = 1\nbase_url = "http://h:2"\n',
        "servers.base_url",
        4,
        "got both",
    ),
    (
        '[[servers]]\nname = "gpu0"\nport = 0\n',
        "servers.port",
        3,
        r"#1 \(gpu0\): expected a port number in 1..65535, got 0",
    ),
    ('[[servers]]\nname = "a"\nport = "11435"\n', "servers.port", 3, 'got the string "11435"'),
    (
        '[[servers]]\nname = "a"\nbase_url = "ftp://h"\n',
        "servers.base_url",
        3,
        "expected an http:// or https:// URL",
    ),
    ('[[servers]]\nname = "a"\nbase_url = ""\n', "servers.base_url", 3, "with a host"),
    (
        ONE + '[[servers]]\nname = "gpu1"\nbase_url = "http://localhost:11435"\n',
        "servers.base_url",
        6,
        r"#2 \(gpu1\): http://localhost:11435 is the address of \[\[servers\]\] #1 \(gpu0\) "
        "too: each server needs its own port",
    ),
    (
        ONE + '[[servers]]\nname = "gpu1"\nport = 11435\n',
        "servers.port",
        6,
        r"#2 \(gpu1\): http://127.0.0.1:11435 is the address of \[\[servers\]\] #1",
    ),
    (
        ONE + "env = { A = 1 }\n",
        "servers.env.A",
        4,
        r"#1 \(gpu0\): expected a string, got the integer 1",
    ),
    (ONE + 'env = { A = "a\\u0000b" }\n', "servers.env.A", 4, "NUL byte"),
    (ONE + 'env = ["A=1"]\n', "servers.env", 4, "expected a table of strings"),
    (
        ONE + 'models = ["llama3", "bad name"]\n',
        "servers.models",
        4,
        r"#1 \(gpu0\): entry 2: ",
    ),
    (ONE + 'models = "llama3"\n', "servers.models", 4, "expected an array of model names"),
    (
        ONE + "prot = 1\n",
        "servers.prot",
        4,
        r"unknown key 'prot' in a \[\[servers\]\] entry; did you mean 'port'\?",
    ),
    (
        ONE + 'command = ["ollama", "serve"]\n',
        "servers.command",
        4,
        r"every other \[server\], \[restart\], \[liveness\] and \[warm\] key applies to each",
    ),
    ('[servers]\nname = "a"\n', "servers", 1, r"expected \[\[servers\]\] entries .* got a table"),
    ("servers = []\n", "servers", 1, "names no server"),
    ('servers = ["a"]\n', "servers", 1, r"#1: expected a table \(\[\[servers\]\]\)"),
]


@pytest.mark.parametrize(("text", "key", "line", "message"), REFUSALS)
def test_a_bad_entry_is_refused_naming_the_entry_key_and_line(
    write_config: WriteConfig, text: str, key: str, line: int, message: str
) -> None:
    error = refused(write_config, text)
    assert (error.key, error.line) == (key, line)
    assert re.search(message, error.message), error.message
    assert f"key '{key}'" in str(error) and "[[servers]]" in str(error)


@pytest.mark.parametrize(
    ("ollama", "key"),
    [
        ('base_url = "http://127.0.0.1:11434"', "ollama.base_url"),
        ('host = "127.0.0.1"', "ollama.host"),
        ("port = 11434", "ollama.port"),
    ],
)
def test_with_servers_an_ollama_address_is_refused_naming_the_fix(
    write_config: WriteConfig, ollama: str, key: str
) -> None:
    error = refused(write_config, f"[ollama]\n{ollama}\n\n" + ONE)
    assert (error.key, error.line) == (key, 2)
    name = key.partition(".")[2]
    assert error.message == (
        f"[ollama] {name} cannot be set with [[servers]]: each server names its own "
        "address. Remove it from [ollama] and give every [[servers]] entry its base_url "
        "or port"
    )


def test_with_servers_the_address_variables_do_not_apply_and_say_so(
    write_config: WriteConfig,
) -> None:
    env = {"NAMEL3SS_OLLAMA_BASE_URL": "http://elsewhere:1", "OLLAMA_HOST": "gpu:2"}
    s = load(write_config, ONE, env)
    assert s.ollama.base_url == "http://127.0.0.1:11435"
    assert s.warnings == (
        "NAMEL3SS_OLLAMA_BASE_URL is set but does not apply with [[servers]]: each "
        "server's address is its entry's base_url or port",
        "OLLAMA_HOST is set but does not apply with [[servers]]: each server's address "
        "is its entry's base_url or port",
    )
    # Blank, as Ollama reads it, is unset: nothing to warn about.
    assert load(write_config, ONE, {"OLLAMA_HOST": " '' "}).warnings == ()


def test_the_proxy_may_not_listen_on_any_servers_address(write_config: WriteConfig) -> None:
    text = ONE + '[[servers]]\nname = "gpu1"\nport = 11436\n[proxy]\nlisten = "127.0.0.1:11436"\n'
    error = refused(write_config, text)
    assert error.key == "proxy.listen"
    assert "own address (http://127.0.0.1:11436)" in error.message


def test_an_entry_may_be_written_inline(write_config: WriteConfig) -> None:
    s = load(write_config, 'servers = [{ name = "a", port = 1 }, { name = "b", port = 2 }]\n')
    assert s.server_names() == ("a", "b")
    error = refused(
        write_config, 'servers = [{ name = "a", port = 1 }, { name = "a", port = 2 }]\n'
    )
    assert (error.key, error.line) == ("servers.name", 1)


def test_every_entry_key_has_its_row_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"^### `\[\[servers\]\]`\n(.*?)(?=^#)", text, re.M | re.S)
    assert found, f"no table for [[servers]] in {DOCS.name}"
    assert re.findall(r"^\| `([a-z_]+)` \|", found.group(1), re.M) == list(ENTRY_KEYS)
