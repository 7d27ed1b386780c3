"""The installed `n3ctl` against a scripted daemon: every command, both forms, exit codes."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from . import samples
from .conftest import N3CTL, Run, clean_env, run_ctl
from .fake_daemon import Fail, FakeDaemon, Session

Ctl = Callable[..., Run]

# (argv, exit code, a line the human form prints, the method and params the daemon saw)
COMMANDS: list[tuple[list[str], int, str, tuple[str, dict[str, Any]]]] = [
    (["status"], 0, "     Active: running (managed) since", ("status", {})),
    (["health"], 0, "ok: Ollama 0.5.7 answered in 12 ms", ("health", {})),
    (["health", "--force"], 0, "(checked 4s ago, fresh)", ("health", {"force": True})),
    (["models"], 0, "llama3:8b    365c0bd3c000   4.7 GB", ("models.list", {})),
    (["models", "--refresh"], 0, "NAME ", ("models.list", {"refresh": True})),
    (["models", "--loaded"], 0, "llama3:8b    6.7 GB   6.7 GB   forever", ("models.loaded", {})),
    (["rm", "llama3:8b"], 0, "deleted llama3:8b", ("models.delete", {"model": "llama3:8b"})),
    # ensure always offers a progress token: the daemon may pull (auto_pull_model)
    (
        ["ensure", "llama3:8b"],
        0,
        "llama3:8b: available",
        ("models.ensure", {"model": "llama3:8b", "workDoneToken": "n3ctl-1"}),
    ),
    (
        ["ensure", "missing:latest"],
        1,
        "missing:latest: not available",
        ("models.ensure", {"model": "missing:latest", "workDoneToken": "n3ctl-1"}),
    ),
    (["validate", "llama3"], 0, "valid: llama3:latest", ("models.validate", {"model": "llama3"})),
    (
        ["validate", "bad name"],
        1,
        "invalid: model names have no spaces",
        ("models.validate", {"model": "bad name"}),
    ),
    (["warm"], 0, "llama3:8b    forever      yes", ("warm.list", {})),
    (["warm", "list"], 0, "KEEP ALIVE", ("warm.list", {})),
    (
        ["warm", "add", "qwen2:0.5b", "--keep-alive", "10m"],
        0,
        "qwen2:0.5b   10m",
        ("warm.add", {"model": "qwen2:0.5b", "keep_alive": "10m"}),
    ),
    (
        ["warm", "add", "qwen2:0.5b", "--keep-alive", "300"],
        0,
        "qwen2:0.5b",
        ("warm.add", {"model": "qwen2:0.5b", "keep_alive": 300}),
    ),
    (
        ["warm", "add", "qwen2:0.5b", "--keep-alive=-1"],
        0,
        "qwen2:0.5b",
        ("warm.add", {"model": "qwen2:0.5b", "keep_alive": -1}),
    ),
    (["warm", "rm", "qwen2:0.5b"], 0, "LAST WARMED", ("warm.remove", {"model": "qwen2:0.5b"})),
    (["start"], 0, "ollama: running", ("server.start", {})),
    (["stop"], 0, "ollama: stopped", ("server.stop", {})),
    (["restart"], 0, "ollama: running", ("server.restart", {})),
    (["metrics"], 0, "n3d.rpc.duration", ("metrics", {})),
    (["version"], 0, "n3d 0.1.0 (pid 1234, socket /run/n3/n3d.sock)", ("status", {})),
]


def _ids(case: tuple[list[str], int, str, Any]) -> str:
    return " ".join(case[0])


@pytest.mark.parametrize("case", COMMANDS, ids=_ids)
def test_each_command_in_human_form(case: Any, ctl: Ctl, fake: FakeDaemon) -> None:
    argv, code, line, (method, params) = case
    result = ctl(*argv)
    assert result.code == code, result.err
    assert line in result.out
    assert "\x1b[" not in result.out  # not a TTY: no colour
    assert fake.calls == [(method, params)]


@pytest.mark.parametrize("case", COMMANDS, ids=_ids)
def test_each_command_in_json_form(case: Any, ctl: Ctl, fake: FakeDaemon) -> None:
    argv, code, _, (method, params) = case
    result = ctl("--json", *argv)
    assert result.code == code, result.err
    document = json.loads(result.out)  # exactly one JSON document
    assert isinstance(document, dict)
    assert result.out == json.dumps(document, indent=2, sort_keys=True) + "\n"  # stable keys
    if argv[0] == "status":
        assert document == samples.STATUS
    if argv[0] == "version":
        assert document == {"n3ctl": {"version": "0.1.0"}, "n3d": samples.STATUS["daemon"]}


def test_global_options_may_follow_the_command(ctl: Ctl, fake: FakeDaemon) -> None:
    result = run_ctl("status", "--json", "--socket", str(fake.path), "--timeout", "3")
    assert result.code == 0 and json.loads(result.out)["server"]["state"] == "running"


def test_socket_option_beats_the_environment(fake: FakeDaemon) -> None:
    env = clean_env(N3D_SOCKET="/nonexistent/n3d.sock")
    assert run_ctl("--socket", str(fake.path), "status", env=env).code == 0
    assert run_ctl("status", env=env).code == 69


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("stopped", 3),
        ("fatal", 3),
        ("backoff", 3),
        ("unreachable", 3),
        ("degraded", 0),
        ("external", 0),
        ("who-knows", 4),
    ],
)
def test_status_exit_code_follows_the_server_state(
    state: str, code: int, ctl: Ctl, fake: FakeDaemon
) -> None:
    fake.handlers["status"] = lambda p, s: {
        **samples.STATUS,
        "server": {**samples.STATUS["server"], "state": state},
    }
    for argv in (["status"], ["--json", "status"]):
        result = ctl(*argv)
        assert result.code == code
        assert result.out  # the status is still printed


def test_failing_health_exits_1(ctl: Ctl, fake: FakeDaemon) -> None:
    fake.handlers["health"] = lambda p, s: {
        "ok": False,
        "error": "connection refused",
        "age_s": 1,
        "cached": True,
    }
    result = ctl("health")
    assert result.code == 1
    assert result.out == "failing: connection refused (checked 1s ago, cached)\n"


def test_start_waits_out_a_start_under_way_and_fails_when_it_does_not_end(
    ctl: Ctl, fake: FakeDaemon
) -> None:
    starting = {**samples.STATUS["server"], "state": "starting", "reason": "spawned"}
    fake.handlers["server.start"] = lambda p, s: {"state": "starting", "server": starting}
    fake.handlers["status"] = lambda p, s: {**samples.STATUS, "server": starting}
    result = ctl("--timeout", "0.5", "start")
    assert (result.code, result.out) == (1, "ollama: starting\n")
    assert result.err.startswith("n3ctl: ollama is still starting after 0.5 s; ")
    assert fake.calls[0] == ("server.start", {})
    assert {call for call, _ in fake.calls[1:]} <= {"status"}  # polled while it waited


def test_a_daemon_error_prints_the_seed_layout_with_its_suggestion(ctl: Ctl) -> None:
    result = ctl("rm", "nope")
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        "Ollama model 'nope' is not available locally.\n"
        "Model: nope\n"
        "Server: http://127.0.0.1:11434\n"
        "\n"
        "Suggestion: Run: ollama pull nope\n"
        "Or enable auto_pull_model in your configuration.\n"
    )


def test_a_daemon_error_in_json_mode_keeps_stdout_empty(ctl: Ctl, fake: FakeDaemon) -> None:
    def not_managed(params: dict[str, Any], session: Session) -> Any:
        raise Fail(
            1006,
            "n3d does not manage this server (mode external).",
            {"kind": "not_managed", "suggestion": "Stop it where it was started."},
        )

    fake.handlers["server.stop"] = not_managed
    result = ctl("--json", "stop")
    assert (result.code, result.out) == (1, "")
    assert result.err.endswith("\n\nSuggestion: Stop it where it was started.\n")


def test_an_older_daemon_without_the_method(ctl: Ctl, fake: FakeDaemon) -> None:
    del fake.handlers["metrics"]
    result = ctl("metrics")
    assert result.code == 1
    assert "Method not found" in result.err
    assert "does not offer `metrics`" in result.err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["pull"],
        ["rm"],
        ["warm", "add"],
        ["warm", "frob"],
        ["--timeout", "-1", "status"],
        ["--timeout", "soon", "status"],
        ["status", "extra"],
    ],
    ids=lambda argv: " ".join(argv) or "(none)",
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = run_ctl(*argv, env=clean_env(N3D_SOCKET="/nonexistent/s.sock"))
    assert result.code == 2
    assert result.out == ""
    assert "usage: n3ctl" in result.err


def test_help_and_version_flag_exit_0() -> None:
    assert run_ctl("--help").code == 0
    result = run_ctl("--version")
    assert (result.code, result.out) == (0, "n3ctl 0.1.0\n")


def test_metrics_prometheus_prints_the_text_the_daemon_rendered(ctl: Ctl, fake: FakeDaemon) -> None:
    result = ctl("metrics", "--prometheus")
    assert result.code == 0
    assert result.out == samples.PROMETHEUS["text"]  # rendered once, in the daemon
    assert [method for method, _ in fake.calls] == ["metrics.prometheus"]


def test_pull_prints_plain_progress_lines_when_not_a_tty(ctl: Ctl, fake: FakeDaemon) -> None:
    result = ctl("pull", "llama3:8b")
    assert result.code == 0, result.err
    assert result.out == "pulled llama3:8b in 1.5s\n"
    assert "\r" not in result.err and "\x1b" not in result.err
    assert "pulling 6a0746a1ec1a: 50% (500 B/1.0 kB" in result.err
    assert "✓ 4fa551d4f938  200 B\n" in result.err
    method, params = fake.calls[0]
    assert method == "models.pull" and params["workDoneToken"]


def test_pull_json_is_json_lines_ending_with_the_result(ctl: Ctl) -> None:
    result = ctl("--json", "pull", "llama3:8b")
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[:-1] == samples.PULL_PROGRESS
    assert lines[-1] == {"model": "llama3:8b", "status": "success", "duration_s": 1.5}
    assert result.err == ""


def _sigint_default() -> None:
    # pytest may run with SIGINT ignored (a background job); n3ctl must see Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_pull_cancels_the_wait_and_exits_130(fake: FakeDaemon) -> None:
    release = []

    def slow_pull(params: dict[str, Any], session: Session) -> Any:
        session.notify(
            "$/progress", {"token": params["workDoneToken"], "value": samples.PULL_PROGRESS[1]}
        )
        session.cancelled.wait(10)
        release.append(True)
        raise Fail(-32800, "Request cancelled")

    fake.handlers["models.pull"] = slow_pull
    proc = subprocess.Popen(
        [str(N3CTL), "--json", "pull", "llama3:8b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(N3D_SOCKET=str(fake.path)),
        preexec_fn=_sigint_default,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first progress line: the pull is under way
    assert json.loads(first)["digest"] == "sha256:6a0746a1ec1a"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert "stopped waiting for llama3:8b; the download may continue in the daemon" in err
    assert fake.cancel_seen.wait(5)
    assert fake.cancelled_ids == [1]


def _read_lines(proc: subprocess.Popen[str], count: int) -> list[str]:
    assert proc.stdout is not None
    return [proc.stdout.readline() for _ in range(count)]


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_events_follow_until_ctrl_c(as_json: bool, fake: FakeDaemon) -> None:
    argv = [str(N3CTL), *(["--json"] if as_json else []), "events"]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(N3D_SOCKET=str(fake.path), TZ="UTC"),
        preexec_fn=_sigint_default,
    )
    lines = _read_lines(proc, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    if as_json:
        assert [json.loads(line)["topic"] for line in lines] == ["server.state", "health"]
    else:
        assert lines == ["11:20:00 server.state to=running\n", "11:20:01 health to=running\n"]
    assert fake.calls == [("events.subscribe", {})]


def test_events_topic_filter_is_sent_to_the_daemon(fake: FakeDaemon) -> None:
    proc = subprocess.Popen(
        [str(N3CTL), "--json", "events", "--topic", "health"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(N3D_SOCKET=str(fake.path)),
        preexec_fn=_sigint_default,
    )
    (line,) = _read_lines(proc, 1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert json.loads(line)["topic"] == "health"
    assert fake.calls == [("events.subscribe", {"topics": ["health"]})]


def _run_on_a_tty(argv: list[str], env: dict[str, str]) -> str:
    """Run n3ctl with stdout (and stderr) on a pseudo-terminal; returns what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(N3CTL), *argv], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 10)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    proc.wait(10)
    return b"".join(chunks).decode()


def test_colour_on_a_tty_and_never_with_no_color(fake: FakeDaemon) -> None:
    env = clean_env(N3D_SOCKET=str(fake.path), TERM="xterm")
    assert "\x1b[32m●" in _run_on_a_tty(["status"], env)
    plain = _run_on_a_tty(["status"], {**env, "NO_COLOR": "1"})
    assert "● ollama" in plain and "\x1b[" not in plain
    assert "\x1b[" not in _run_on_a_tty(["--json", "status"], env)  # JSON is never coloured


def test_pull_draws_a_bar_on_a_tty(fake: FakeDaemon) -> None:
    text = _run_on_a_tty(["pull", "llama3:8b"], clean_env(N3D_SOCKET=str(fake.path)))
    assert "\r\x1b[K" in text  # redrawn in place
    assert "✓ 6a0746a1ec1a  1.0 kB" in text
    assert "pulled llama3:8b in 1.5s" in text


def test_a_closed_pipe_is_not_a_traceback(ctl: Ctl, fake: FakeDaemon) -> None:
    proc = subprocess.Popen(
        f"{N3CTL} models | head -c 1",
        shell=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(N3D_SOCKET=str(fake.path)),
    )
    _, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err
