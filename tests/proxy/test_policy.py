"""When a request may go (the gate's policy), which server takes it, route templates, `listen`."""

from __future__ import annotations

from pathlib import Path

import pytest

from n3d.config import load_settings
from n3d.config.checks import Invalid
from n3d.config.listen import check_listen, listen_address
from n3d.errors import ConfigError
from n3d.proxy.gate import Verdict, decide, refusal
from n3d.proxy.pick import Candidate, Pick, pick
from n3d.proxy.routes import NO_RETRY, OTHER, route_of
from n3d.state import ServerState, Snapshot

S = ServerState


@pytest.mark.parametrize(
    ("state", "reason", "verdict"),
    [
        (S.RUNNING, "", Verdict.GO),
        (S.DEGRADED, "check failed", Verdict.GO),
        (S.EXTERNAL, "", Verdict.GO),
        (S.STARTING, "", Verdict.HOLD),
        (S.BACKOFF, "exit code 1", Verdict.HOLD),
        (S.STOPPING, "server.restart", Verdict.HOLD),
        (S.UNREACHABLE, "", Verdict.HOLD),
        (S.STOPPED, "", Verdict.HOLD),  # n3d starting: the first start is coming
        (S.STOPPED, "server.stop", Verdict.REFUSE),
        (S.STOPPED, "n3d is shutting down", Verdict.REFUSE),
        (S.FATAL, "failed to start", Verdict.REFUSE),
    ],
)
def test_only_starting_backoff_and_n3ds_own_restarts_are_waited_out(
    state: ServerState, reason: str, verdict: Verdict
) -> None:
    assert decide(Snapshot(state=state, reason=reason)) is verdict


def test_a_refusal_is_one_line_with_the_seeds_suggestion() -> None:
    text = refusal(Snapshot(state=S.FATAL, reason="5 failed starts", base_url="http://h:1"))
    assert text.startswith("Ollama server at http://h:1 is fatal: 5 failed starts.")
    assert "Suggestion: " in text and "\n" not in text


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/", "/"),
        ("/api/chat", "/api/chat"),
        ("/api/blobs/sha256:" + "a" * 64, "/api/blobs/:digest"),
        ("/v1/models/llama3.2", "/v1/models/:model"),
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/api/chat/", OTHER),
        ("/wp-admin/x.php", OTHER),
        ("/api/blobs/", OTHER),
    ],
)
def test_routes_are_templates_never_raw_paths(path: str, route: str) -> None:
    assert route_of(path) == route


def test_side_effect_routes_are_never_retried() -> None:
    assert {"/api/create", "/api/copy", "/api/delete", "/api/push"} < NO_RETRY
    assert "/api/blobs/:digest" in NO_RETRY and "/api/chat" not in NO_RETRY


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("", ""),
        ("127.0.0.1:11434", "127.0.0.1:11434"),
        (":11434", "127.0.0.1:11434"),
        ("[::1]:8080", "[::1]:8080"),
        ("0.0.0.0:11434", "0.0.0.0:11434"),
        ("localhost:1", "localhost:1"),
    ],
)
def test_listen_addresses(value: str, normal: str) -> None:
    assert listen_address(value) == normal


@pytest.mark.parametrize("value", ["11434", "host:11434", "127.0.0.1:0", "1.2.3.4:99999", 5])
def test_bad_listen_addresses_say_what_is_expected(value: object) -> None:
    with pytest.raises(Invalid):
        listen_address(value)


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(message, key=key)


@pytest.mark.parametrize(
    ("listen", "base_url"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("localhost:11434", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://localhost:11434"),
    ],
)
def test_listening_on_the_servers_own_address_says_how_to_move_ollama(
    listen: str, base_url: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_listen(listen, base_url, _error)
    assert caught.value.key == "proxy.listen"
    assert '[ollama] base_url = "http://127.0.0.1:11435"' in str(caught.value)


def test_another_port_is_fine() -> None:
    check_listen("127.0.0.1:11434", "http://127.0.0.1:11435", _error)
    check_listen("", "http://127.0.0.1:11434", _error)


def test_the_default_config_in_front_of_the_default_ollama_is_refused_at_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "n3d.toml"
    path.write_text('[proxy]\nlisten = "127.0.0.1:11434"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert (caught.value.key, caught.value.line) == ("proxy.listen", 2)
    moved = tmp_path / "moved.toml"
    moved.write_text(
        '[ollama]\nbase_url = "http://127.0.0.1:11435"\n[proxy]\nlisten = "127.0.0.1:11434"\n'
    )
    settings = load_settings(moved, env={})
    assert settings.proxy.listen == "127.0.0.1:11434" and settings.proxy.retry is True


# -- which server takes a request (several servers) ------------------------------------

GO, HOLD, REFUSE = Verdict.GO, Verdict.HOLD, Verdict.REFUSE


def test_a_loaded_model_goes_to_the_least_busy_healthy_server_that_has_it() -> None:
    servers = [
        Candidate(GO, in_flight=0),
        Candidate(GO, in_flight=3, loaded=True),
        Candidate(GO, in_flight=2, loaded=True),
        Candidate(GO, in_flight=0, home=True),
    ]
    assert pick(servers, by_model=True) == Pick(GO, 2)
    tie = [Candidate(GO, 1, loaded=True), Candidate(GO, 1, loaded=True)]
    assert pick(tie, by_model=True) == Pick(GO, 0)  # the first listed


def test_else_its_home_and_a_home_on_its_way_back_is_waited_for() -> None:
    home_up = [Candidate(GO, 0), Candidate(GO, 5, home=True)]
    assert pick(home_up, by_model=True) == Pick(GO, 1)
    restarting = [Candidate(GO, 0), Candidate(HOLD, home=True), Candidate(GO, 0)]
    assert pick(restarting, by_model=True) == Pick(HOLD, 1, (1,))
    # hold_timeout has passed: a healthy server takes it
    assert pick(restarting, by_model=True, patient=False) == Pick(GO, 0)
    # a loaded copy elsewhere wins over waiting
    loaded = [Candidate(GO, 4, loaded=True), Candidate(HOLD, home=True)]
    assert pick(loaded, by_model=True) == Pick(GO, 0)
    fatal = [Candidate(REFUSE, home=True), Candidate(GO, 2), Candidate(GO, 1)]
    assert pick(fatal, by_model=True) == Pick(GO, 2)


def test_else_the_least_busy_healthy_server_preferring_one_known_to_have_it() -> None:
    servers = [Candidate(GO, 0, installed=False), Candidate(GO, 3), Candidate(GO, 2)]
    assert pick(servers, by_model=True) == Pick(GO, 2)
    known = [Candidate(GO, 0), Candidate(GO, 9, installed=True)]
    assert pick(known, by_model=True) == Pick(GO, 1)
    nowhere = [Candidate(GO, 1, installed=False), Candidate(GO, 0, installed=False)]
    assert pick(nowhere, by_model=True) == Pick(GO, 1)


def test_without_a_model_the_first_healthy_server() -> None:
    servers = [Candidate(REFUSE), Candidate(HOLD), Candidate(GO, 9), Candidate(GO, 0)]
    assert pick(servers, by_model=False) == Pick(GO, 2)


def test_nothing_healthy_waits_for_any_server_on_its_way_back_else_refuses() -> None:
    servers = [Candidate(REFUSE), Candidate(HOLD), Candidate(HOLD)]
    assert pick(servers, by_model=False) == Pick(HOLD, 1, (1, 2))
    assert pick(servers, by_model=False, patient=False) == Pick(HOLD, 1)
    refused = [Candidate(REFUSE), Candidate(REFUSE, home=True)]
    assert pick(refused, by_model=True) == Pick(REFUSE, 1)  # the home's refusal
    assert pick(refused, by_model=False) == Pick(REFUSE, 0)
