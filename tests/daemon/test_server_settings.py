"""Each server's settings as n3d runs it: for_server, plus OLLAMA_NOPRUNE where a
managed server shares its models directory, and its pinned models across reloads
(fast: no process)."""

from __future__ import annotations

from pathlib import Path

from n3d.config import Settings, load_settings
from n3d.daemon import Daemon
from n3d.servers import server_settings

SHARED = """\
[server]
mode = "managed"

[[servers]]
name = "gpu0"
port = 11435
env = { CUDA_VISIBLE_DEVICES = "0" }

[[servers]]
name = "gpu1"
port = 11436
env = { CUDA_VISIBLE_DEVICES = "1", OLLAMA_NOPRUNE = "false" }

[[servers]]
name = "own"
port = 11437
env = { OLLAMA_MODELS = "/srv/own" }

[[servers]]
name = "tilde"
port = 11438
env = { OLLAMA_MODELS = "~/.ollama/models" }
"""


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "n3d.toml"
    path.write_text(text)
    return load_settings(path, {"HOME": str(tmp_path)})


def test_servers_sharing_a_directory_get_noprune_unless_set(tmp_path: Path) -> None:
    views = server_settings(load(tmp_path, SHARED), {"HOME": str(tmp_path)})
    assert list(views) == ["gpu0", "gpu1", "own", "tilde"]
    env = {name: dict(view.server.env) for name, view in views.items()}
    # gpu0, gpu1 and tilde all use ~/.ollama/models (the default, or written with ~).
    assert env["gpu0"] == {"CUDA_VISIBLE_DEVICES": "0", "OLLAMA_NOPRUNE": "1"}
    assert env["gpu1"]["OLLAMA_NOPRUNE"] == "false"  # the user's value stays
    assert env["tilde"]["OLLAMA_NOPRUNE"] == "1"
    assert "OLLAMA_NOPRUNE" not in env["own"]
    assert views["gpu1"].ollama.base_url == "http://127.0.0.1:11436"


def test_one_server_and_mode_external_are_left_as_they_are(tmp_path: Path) -> None:
    one = load(tmp_path, '[server]\nmode = "managed"\n')
    (view,) = server_settings(one, {"HOME": str(tmp_path)}).values()
    assert view == one.for_server("default") and "OLLAMA_NOPRUNE" not in view.server.env
    external = load(tmp_path, SHARED.replace('"managed"', '"external"'))
    views = server_settings(external, {"HOME": str(tmp_path)})
    assert all(v == external.for_server(name) for name, v in views.items())


PINNED = """\
[[servers]]
name = "gpu0"
port = 11435

[[servers]]
name = "gpu1"
port = 11436
models = [{}]
"""


def test_a_reload_that_changes_a_servers_models_reaches_its_pins(tmp_path: Path) -> None:
    """The proxy and `warm.add` read `Pins.of(name)` per request; a reload replaces it."""
    settings = load(tmp_path, PINNED.format('"llama3.1:70b"'))
    daemon = Daemon(settings, command=("ollama", "serve"), env={"HOME": str(tmp_path)})
    gpu0, gpu1 = daemon.pins.of("gpu0"), daemon.pins.of("gpu1")
    assert (gpu0(), gpu1()) == (frozenset(), {"llama3.1:70b"})
    load(tmp_path, PINNED.format('"llama3.1:70b", "phi3"'))  # rewrites the file
    assert daemon.reload() is True
    assert gpu1() == {"llama3.1:70b", "phi3"} and gpu0() == frozenset()
    seen = gpu1()
    load(tmp_path, "[ollama]\ndefault_model = 'phi3'\n" + PINNED.format('"phi3", "llama3.1:70b"'))
    assert daemon.reload() is True
    assert gpu1() is seen  # unchanged: the same object, so the proxy's cache holds
