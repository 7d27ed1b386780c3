"""The argument fast path agrees with argparse wherever it answers at all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from n3d.ctl.parse import build_parser, fast_parse

TOKENS = [
    "status",
    "health",
    "models",
    "--force",
    "--loaded",
    "--refresh",
    "--json",
    "--socket",
    "/tmp/x.sock",
    "--timeout",
    "2.5",
    "0",
    "-1",
    "nan",
    "--help",
    "pull",
    "--socket=/tmp/y.sock",
    "",
    "warm",
    "-x",
]
FIELDS = ("command", "json", "socket", "timeout", "force", "loaded", "refresh")


def _argparse(argv: list[str]) -> dict[str, object] | None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        return None
    return {name: getattr(args, name, None) for name in FIELDS}


@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_fast_path_matches_argparse(argv: list[str]) -> None:
    fast = fast_parse(argv)
    if fast is None:
        return  # argparse decides: nothing to compare
    expected = _argparse(argv)
    assert expected is not None, f"fast path accepted what argparse refuses: {argv}"
    got = {name: getattr(fast, name, None) for name in FIELDS}
    for name in ("json", "socket", "timeout", "command", "force", "loaded", "refresh"):
        assert got[name] == expected[name] or (not got[name] and not expected[name]), (name, argv)


@pytest.mark.parametrize(
    ("argv", "command", "extra"),
    [
        (["status"], "status", {}),
        (
            ["--json", "status", "--socket", "/s", "--timeout", "3"],
            "status",
            {"json": True, "socket": "/s", "timeout": 3.0},
        ),
        (["health", "--force"], "health", {"force": True}),
        (["models", "--loaded", "--json"], "models", {"loaded": True, "json": True}),
    ],
)
def test_hot_forms_take_the_fast_path(
    argv: list[str], command: str, extra: dict[str, object]
) -> None:
    args = fast_parse(argv)
    assert args is not None and args.command == command
    for name, value in extra.items():
        assert getattr(args, name) == value


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["pull", "x"],
        ["status", "--force"],
        ["--help"],
        ["status", "status"],
        ["--timeout", "-1", "status"],
        ["--socket=/s", "status"],
        ["--timeout", "nan", "status"],
    ],
)
def test_everything_else_goes_to_argparse(argv: list[str]) -> None:
    assert fast_parse(argv) is None
