"""The repo's systemd/ and launchd/ files are the templates the installed package renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from n3d.errors import ServiceError
from n3d.service import render as service

ROOT = Path(__file__).resolve().parents[2]
REPO_COPIES = {
    "n3d.service": ROOT / "systemd" / "n3d.service",
    "n3d.socket": ROOT / "systemd" / "n3d.socket",
    "dev.namel3ss.n3d.plist": ROOT / "launchd" / "dev.namel3ss.n3d.plist",
}


@pytest.mark.parametrize("name", service.TEMPLATES)
def test_repo_copy_is_identical_to_the_package_data(name: str) -> None:
    assert REPO_COPIES[name].read_text("utf-8") == service.template_text(name), (
        f"{REPO_COPIES[name]} differs from daemon/n3d/service/templates/{name}; "
        "the package copy is canonical: copy it over the repo's"
    )


@pytest.mark.parametrize("name", service.TEMPLATES)
def test_every_template_says_who_wrote_it(name: str) -> None:
    # uninstall removes only files carrying this marker
    assert service.MARKER in service.template_text(name)


def test_templates_use_only_known_placeholders() -> None:
    found = {
        match
        for name in service.TEMPLATES
        for match in re.findall(r"@[A-Z0-9_]+@", service.template_text(name))
    }
    assert found == {
        "@N3D@",
        "@N3D_CONFIG@",
        "@STOP_TIMEOUT_S@",
        "@DRAIN_S@",
        "@TIMEOUT_STOP_S@",
        "@LOG_DIR@",
    }


def test_the_service_managers_stop_timeout_covers_the_proxys_drain() -> None:
    # n3d drains proxied requests (up to [proxy] drain_timeout) before it stops Ollama
    # (up to [server] stop_timeout): systemd/launchd must not SIGKILL it meanwhile.
    assert service.timeout_stop_s(10, drain_s=30) == 60
    assert service.timeout_stop_s(10, drain_s=30) >= 10 + 30 + 20
    assert service.timeout_stop_s(10) == 30


def test_unknown_template_is_a_service_error() -> None:
    with pytest.raises(ServiceError):
        service.template_text("nope.service")


@pytest.mark.parametrize(
    ("stop_timeout", "expected"), [(10, 30), (0.5, 30), (10.2, 31), (45, 65), (600, 620)]
)
def test_manager_waits_longer_than_n3d_own_stop(stop_timeout: float, expected: int) -> None:
    assert service.timeout_stop_s(stop_timeout) == expected
    assert service.timeout_stop_s(stop_timeout) >= stop_timeout + 20
