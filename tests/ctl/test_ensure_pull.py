"""`n3ctl ensure --pull`: shows the download's progress and waits as long as it runs.

It used to keep `ensure`'s 30 s limit: a longer pull timed out (exit 69), and n3ctl
hanging up made n3d abandon the pull it was the only waiter of.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from n3d import ctl

from . import samples
from .fake_daemon import FakeDaemon, Session
from .test_e2e import PULLED, RealDaemon, real_daemon


@pytest.mark.slow
def test_ensure_pull_outlasts_the_ensure_timeout_and_shows_progress(
    fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Scaled down: the default limit for `ensure` is 30 s; this one is 0.2 s, and the
    # download below goes quiet for far longer (verifying a big layer sends nothing).
    monkeypatch.setitem(ctl._TIMEOUTS, "ensure", 0.2)

    def long_pull(params: dict[str, Any], session: Session) -> Any:
        token = params["workDoneToken"]
        for value in samples.PULL_PROGRESS[:-1]:
            session.notify("$/progress", {"token": token, "value": value})
        time.sleep(1.5)  # the scenario, not a bound: silent for 7 times the limit
        session.notify("$/progress", {"token": token, "value": samples.PULL_PROGRESS[-1]})
        return {"model": params["model"], "available": True, "pulled": True}

    fake.handlers["models.ensure"] = long_pull
    code = ctl.main(["--socket", str(fake.path), "ensure", "--pull", "llama3:8b"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "llama3:8b: available (pulled now)\n"
    assert "pulling 6a0746a1ec1a: 50% (500 B/1.0 kB" in err
    assert err.endswith("success\n")
    method, params = fake.calls[0]
    assert method == "models.ensure" and params["pull"] is True and params["workDoneToken"]


def test_an_explicit_timeout_still_bounds_each_wait(
    fake: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    def silent_pull(params: dict[str, Any], session: Session) -> Any:
        session.cancelled.wait(5)
        return {"model": params["model"], "available": True, "pulled": True}

    fake.handlers["models.ensure"] = silent_pull
    code = ctl.main(["--socket", str(fake.path), "--timeout", "0.2", "ensure", "--pull", "x"])
    assert code == ctl.EXIT_UNAVAILABLE
    assert "did not answer in time (no reply within 0.2 s)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def n3d() -> Iterator[RealDaemon]:
    yield from real_daemon()


@pytest.mark.slow
def test_ensure_pull_against_n3d_shows_the_pull_progress(n3d: RealDaemon) -> None:
    missing = n3d.ctl("ensure", PULLED)
    assert missing.code == 1 and "not available" in missing.err
    pulled = n3d.ctl("ensure", "--pull", PULLED)
    assert pulled.code == 0, pulled.err
    assert pulled.out == f"{PULLED}: available (pulled now)\n"
    assert f"Pulling {PULLED}" in pulled.err  # the begin title: n3d passed progress on
    assert "✓ " in pulled.err and pulled.err.endswith("success\n")
    again = n3d.ctl("ensure", "--pull", PULLED)
    assert (again.code, again.out, again.err) == (0, f"{PULLED}: available\n", "")
