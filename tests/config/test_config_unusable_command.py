"""A command or environment no program can receive is refused at load, not at the first start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from n3d.config import load_settings
from n3d.errors import ConfigError

from .conftest import WriteConfig

EXIT_CONFIG = 78


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('command = ["ollama\\u0000", "serve"]', "server.command"),
        ('command = ["ollama", "se\\u0000rve"]', "server.command"),
        ('env = { OLLAMA_MODELS = "/data\\u0000/x" }', "server.env.OLLAMA_MODELS"),
    ],
)
def test_a_nul_byte_in_the_command_or_env_is_refused_at_load(
    write_config: WriteConfig, toml: str, key: str
) -> None:
    path = write_config(f"[server]\n{toml}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.key, caught.value.line) == (key, 2)
    assert "NUL byte" in caught.value.message


@pytest.mark.slow
def test_n3d_run_refuses_a_nul_byte_in_the_command_with_exit_78(tmp_path: Path) -> None:
    config = tmp_path / "n3d.toml"
    config.write_text(
        '[ollama]\nbase_url = "http://127.0.0.1:9"\n'
        '[server]\nmode = "managed"\ncommand = ["ollama\\u0000", "serve"]\n'
    )
    (tmp_path / "run").mkdir(mode=0o700)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "N3D_", "OLLAMA"))},
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "N3D_SOCKET": str(tmp_path / "s.sock"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "n3d", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "server.command" in done.stderr and "NUL byte" in done.stderr
