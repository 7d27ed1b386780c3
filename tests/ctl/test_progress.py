"""The pull progress display: a redrawn bar on a TTY, plain lines otherwise (fixed inputs)."""

from __future__ import annotations

from n3d.ctl.progress import PullProgress

from . import samples

ERASE = "\r\x1b[K"


def feed(view: PullProgress, step_s: float = 1.0) -> str:
    return "".join(view.update(v, i * step_s) for i, v in enumerate(samples.PULL_PROGRESS))


def test_plain_lines_when_not_a_tty() -> None:
    text = feed(PullProgress(tty=False))
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines() == [
        "pulling manifest",
        "pulling 6a0746a1ec1a: 0% (0 B/1.0 kB)",
        "pulling 6a0746a1ec1a: 50% (500 B/1.0 kB, 500 B/s)",
        "✓ 6a0746a1ec1a  1.0 kB",
        "✓ 4fa551d4f938  200 B",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]


def test_plain_lines_are_at_most_one_per_ten_percent() -> None:
    view = PullProgress(tty=False)
    out = "".join(
        view.update(
            {"kind": "report", "digest": "sha256:ab", "total": 1000, "completed": c}, c / 100
        )
        for c in range(0, 1000, 7)
    )
    assert len(out.splitlines()) == 10


def test_tty_bar_shows_bytes_percent_speed_and_finished_layers() -> None:
    view = PullProgress(tty=True, width=80)
    out = feed(view)
    assert out.startswith("pulling manifest\n")
    frames = [f for f in out.split(ERASE) if f.startswith("pulling 6a0746a1ec1a")]
    assert frames[1].endswith(" 50%  500 B/1.0 kB  500 B/s")
    assert len(frames[1]) == 80 - 1  # the last column stays free: no wrap, no scroll
    bar = frames[1][frames[1].index("[") + 1 : frames[1].index("]")]
    assert bar.count("#") == bar.count(".") == len(bar) // 2
    assert f"{ERASE}✓ 6a0746a1ec1a  1.0 kB\n" in out
    assert f"{ERASE}✓ 4fa551d4f938  200 B\n" in out
    assert out.endswith("success\n")  # the end erased the bar: nothing left on the line


def test_tty_redraws_are_throttled() -> None:
    view = PullProgress(tty=True, redraw_s=0.1)
    value = {"kind": "report", "digest": "sha256:ab", "total": 100, "completed": 1}
    assert view.update(value, 0.0)
    assert view.update({**value, "completed": 2}, 0.05) == ""
    assert view.update({**value, "completed": 3}, 0.2)


def test_close_erases_a_visible_bar_once() -> None:
    view = PullProgress(tty=True)
    view.update({"kind": "report", "digest": "sha256:ab", "total": 100, "completed": 1}, 0)
    assert view.close() == ERASE
    assert view.close() == ""


def test_generic_progress_without_layers_prints_messages() -> None:
    view = PullProgress(tty=False)
    out = view.update({"kind": "begin", "title": "warming llama3"}, 0)
    out += view.update({"kind": "report", "message": "loading", "percentage": 40}, 1)
    assert out == "warming llama3\nloading (40%)\n"


def test_success_completes_layers_that_coalesced_progress_left_short() -> None:
    """n3d sends at most a few updates a second: the last one before `end` may say 96 %."""
    view = PullProgress(tty=False)
    begin = {
        "kind": "begin",
        "title": "Pulling qwen2:0.5b",
        "status": "pulling 6a0746a1ec1a",
        "digest": "sha256:6a0746a1ec1a",
        "total": 1000,
        "percentage": 0,
    }
    out = view.update(begin, 0)
    out += view.update({**begin, "kind": "report", "completed": 960}, 1)
    out += view.update({"kind": "end", "status": "success", "message": "success"}, 2)
    assert out.splitlines() == [
        "Pulling qwen2:0.5b",
        "pulling 6a0746a1ec1a: 0% (0 B/1.0 kB)",
        "pulling 6a0746a1ec1a: 90% (960 B/1.0 kB, 960 B/s)",
        "✓ 6a0746a1ec1a  1.0 kB",
        "success",
    ]
