"""The official `ollama` npm package (ollama-js) against an Ollama API.

`ollama` is installed from the npm registry (pinned below) into a temporary directory
once per session; the test is skipped, saying why, only when node or npm is missing or
the registry cannot be reached. `js/client.mjs` makes the calls and prints what it got.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

OLLAMA_JS = "0.6.4"
SCRIPT = Path(__file__).parent / "js" / "client.mjs"


@pytest.fixture(scope="session")
def ollama_js(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """node, and a directory holding the client script with `ollama` installed beside it."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the ollama npm package")
    workdir = tmp_path_factory.mktemp("ollama-js")
    (workdir / "package.json").write_text('{"private": true, "type": "module"}\n')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"ollama@{OLLAMA_JS}"],
            cwd=workdir,
            capture_output=True,
            timeout=180,
            check=True,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not install ollama@{OLLAMA_JS} from the npm registry: {exc} {detail!r}")
    shutil.copy(SCRIPT, workdir / SCRIPT.name)
    return node, workdir


def test_ollama_js_lists_shows_pulls_generates_chats_embeds_and_deletes(
    ollama_js: tuple[str, Path], base_url: str
) -> None:
    node, workdir = ollama_js
    done = subprocess.run(
        [node, SCRIPT.name, base_url], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["version"] == "0.13.5"
    assert {"llama3.2:latest", "tinyllama:latest", "nomic-embed-text:latest"} <= set(out["list"])
    assert "tools" in out["capabilities"]
    assert out["pull"][0] == "pulling manifest" and out["pull"][-1] == "success"
    assert "all-minilm:latest" in out["listAfterPull"]
    assert out["generate"]["done"] and out["generate"]["evalCount"] > 0
    assert out["generateStreamed"] == out["generate"]["response"]
    assert out["chatStreamed"] == out["chat"] and out["chat"]
    assert isinstance(out["formatJson"], dict)
    [call] = out["toolCalls"]
    assert call["function"]["name"] == "add" and set(call["function"]["arguments"]) == {"a", "b"}
    assert out["noToolsError"] == {
        "message": "registry.ollama.ai/library/tinyllama:latest does not support tools",
        "status": 400,
    }
    assert out["embed"] == [768, 768]
    assert "llama3.2:latest" in out["ps"]
    assert "all-minilm:latest" not in out["listAfterDelete"]
