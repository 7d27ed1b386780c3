"""Which servers share a models directory, and OLLAMA_NOPRUNE for them (pure rules)."""

from __future__ import annotations

from pathlib import Path

from n3d.supervisor.models_dir import models_dir, shared_models_dirs, with_noprune


def test_the_default_directory_is_under_the_childs_home(tmp_path: Path) -> None:
    assert models_dir({"HOME": str(tmp_path)}, {}) == tmp_path / ".ollama" / "models"


def test_ollama_models_in_the_servers_env_wins_and_tilde_is_expanded(tmp_path: Path) -> None:
    base = {"HOME": str(tmp_path), "OLLAMA_MODELS": "/elsewhere"}
    assert models_dir(base, {"OLLAMA_MODELS": "~/m"}) == tmp_path / "m"
    assert models_dir(base, {}) == Path("/elsewhere")


def test_paths_are_compared_resolved(tmp_path: Path) -> None:
    real = tmp_path / "models"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    servers = {
        "a": {"OLLAMA_MODELS": str(real)},
        "b": {"OLLAMA_MODELS": str(tmp_path / "link")},
        "c": {"OLLAMA_MODELS": str(tmp_path / "x" / ".." / "models")},
        "d": {"OLLAMA_MODELS": str(tmp_path / "own")},
    }
    assert shared_models_dirs({"HOME": str(tmp_path)}, servers) == {"a", "b", "c"}


def test_servers_on_the_default_directory_share_it(tmp_path: Path) -> None:
    base = {"HOME": str(tmp_path)}
    servers = {"gpu0": {"CUDA_VISIBLE_DEVICES": "0"}, "gpu1": {"CUDA_VISIBLE_DEVICES": "1"}}
    assert shared_models_dirs(base, servers) == {"gpu0", "gpu1"}
    assert shared_models_dirs(base, {"default": {}}) == frozenset()


def test_noprune_is_added_unless_the_user_set_it() -> None:
    assert with_noprune({}, {"A": "1"}) == {"A": "1", "OLLAMA_NOPRUNE": "1"}
    assert with_noprune({}, {"OLLAMA_NOPRUNE": ""}) == {"OLLAMA_NOPRUNE": ""}
    assert with_noprune({"OLLAMA_NOPRUNE": "false"}, {"A": "1"}) == {"A": "1"}
