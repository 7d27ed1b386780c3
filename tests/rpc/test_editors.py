"""Independent clients over the real socket: vscode-jsonrpc and Emacs jsonrpc.el (LSP
framing), socat (one line).

vscode-jsonrpc comes from the npm registry into ``tests/rpc/node/node_modules``
(git-ignored) on first use and is reused afterwards; without node, npm or the
registry the test is skipped and says why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .support import Running

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"
PACKAGE = NODE_DIR / "node_modules" / "vscode-jsonrpc" / "package.json"
EMACS_CLIENT = Path(__file__).parent / "emacs" / "client.el"


def _vscode_jsonrpc() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run vscode-jsonrpc; install Node.js to run this")
    if not PACKAGE.exists():
        try:
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                capture_output=True,
                timeout=180,
                check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"could not install vscode-jsonrpc from the npm registry: {exc}")
    return node


def _read_step(proc: subprocess.Popen[str]) -> tuple[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"node exited early: {proc.stderr.read() if proc.stderr else ''}"
    message = json.loads(line)
    assert message["step"] != "failure", message["value"]
    return message["step"], message["value"]


@pytest.mark.timeout(60)
def test_vscode_jsonrpc_calls_status_gets_progress_cancel_and_an_event(running: Running) -> None:
    node = _vscode_jsonrpc()
    proc = subprocess.Popen(
        [node, str(NODE_DIR / "client.js"), str(running.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        steps = dict(_read_step(proc) for _ in range(7))
        assert steps["status"]["server"] == {"state": "running"}
        assert steps["positional"] == 19
        assert steps["progress_result"] == {"steps": 2}
        assert steps["progress"] == ["begin", "report", "report", "end"]
        assert steps["error"]["code"] == 1002
        assert steps["error"]["data"]["kind"] == "model_not_found"
        assert steps["cancel"] == {"code": -32800}
        assert steps["subscribed"] == {"subscribed": ["server.state"]}
        assert running.broadcast("server.state", {"from": "starting", "to": "running"}) == 1
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert _read_step(proc) == (
            "event",
            {"topic": "server.state", "from": "starting", "to": "running"},
        )
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.timeout(60)
def test_emacs_jsonrpc_nil_params_and_cancel_by_progress_token(running: Running) -> None:
    # jsonrpc.el sends "params": null for nil; an LSP cancel button sends
    # window/workDoneProgress/cancel {token}.
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("emacs is not installed (jsonrpc.el is the Emacs client of docs/protocol.md)")
    result = subprocess.run(
        [emacs, "--batch", "-Q", "-l", str(EMACS_CLIENT), str(running.path)],
        capture_output=True,
        text=True,
        timeout=45,
    )
    if (
        result.returncode
        and "jsonrpc" in result.stderr
        and "Cannot open load file" in result.stderr
    ):
        pytest.skip("this Emacs has no jsonrpc.el (Emacs 27.1 or later ships it)")
    steps = {}
    for line in result.stdout.splitlines():
        message = json.loads(line)
        assert message["step"] != "failure", (message["value"], result.stderr)
        steps[message["step"]] = message["value"]
    assert result.returncode == 0, result.stderr
    assert steps == {
        "nil_params": ["hello", 5],
        "cancel": -32800,
        "progress": ["begin", "report", "end"],
    }


def test_socat_one_line(running: Running) -> None:
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed (the shell one-liner of docs/protocol.md)")
    result = subprocess.run(
        [socat, "-", f"UNIX-CONNECT:{running.path}"],
        input='{"jsonrpc":"2.0","method":"status","id":1}\n',
        capture_output=True,
        text=True,
        timeout=10,
    )
    reply = json.loads(result.stdout)
    assert reply["id"] == 1 and reply["result"]["server"] == {"state": "running"}
