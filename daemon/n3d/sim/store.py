"""Installed models on disk, laid out as Ollama lays them out under `OLLAMA_MODELS`.

`manifests/<host>/<namespace>/<model>/<tag>` holds a JSON manifest;
`blobs/sha256-<hex>` holds each layer. The simulator's model blobs are small
placeholders (their declared size is in the manifest); the config blob is real
JSON carrying the details `/api/tags` and `/api/show` report.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import ModelName, parse_model_name
from n3d.sim.registry import Layer, RegistryModel

__all__ = ["InstalledModel", "Store"]

_MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """One manifest on disk and what Ollama derives from it."""

    name: ModelName
    path: Path
    digest: str  # sha256 hex of the manifest bytes, no prefix (as /api/tags shows it)
    modified_ns: int
    size: int  # sum of layer sizes plus the config, bytes
    layers: tuple[str, ...]  # every digest the manifest references, config included
    config: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.config.get("n3d_sim", {})
        return meta if isinstance(meta, dict) else {}

    @property
    def capabilities(self) -> list[str]:
        caps = self.meta.get("capabilities", ["completion"])
        return [str(c) for c in caps]

    @property
    def family(self) -> str:
        return str(self.config.get("model_family", ""))

    def details(self) -> dict[str, Any]:
        """The `details` object of /api/tags, /api/ps and /api/show."""
        families = self.config.get("model_families")
        return {
            "parent_model": "",
            "format": self.config.get("model_format", "gguf"),
            "family": self.family,
            "families": families if isinstance(families, list) else None,
            "parameter_size": self.config.get("model_type", ""),
            "quantization_level": self.config.get("file_type", ""),
        }


class Store:
    """The models directory: list, find, write, copy and delete manifests and blobs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests = root / "manifests"
        self.blobs = root / "blobs"

    def prepare(self) -> None:
        """Create the directories, as Ollama does at start (`Error: mkdir ...` if it cannot)."""
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.replace(":", "-")

    def model_blob(self, model: InstalledModel) -> Path:
        """The model layer's blob: the runner's `--model` and `/api/show`'s `FROM`."""
        # A manifest lists the model layer first (registry order), the config last.
        return self.blob_path(model.layers[0]) if len(model.layers) > 1 else self.blobs

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests / name.host / name.namespace / name.model / name.tag

    def _load(self, path: Path) -> InstalledModel | None:
        rel = path.relative_to(self.manifests).parts
        if len(rel) != 4:
            return None
        try:
            name = parse_model_name(f"{rel[0]}/{rel[1]}/{rel[2]}:{rel[3]}")
            data = path.read_bytes()
            stat = path.stat()
            manifest = json.loads(data)
            config_ref = manifest["config"]
            layers = [*manifest["layers"], config_ref]
        except (InvalidModelName, OSError, ValueError, KeyError, TypeError):
            return None  # Ollama skips manifests it cannot read, too
        try:
            config = json.loads(self.blob_path(config_ref["digest"]).read_bytes())
        except (OSError, ValueError):
            config = {}
        return InstalledModel(
            name=name,
            path=path,
            digest=hashlib.sha256(data).hexdigest(),
            modified_ns=stat.st_mtime_ns,
            size=sum(int(layer.get("size", 0)) for layer in layers),
            layers=tuple(str(layer.get("digest", "")) for layer in layers),
            config=config if isinstance(config, dict) else {},
        )

    def list(self) -> list[InstalledModel]:
        """Every readable installed model, newest `modified_at` first (as /api/tags)."""
        found = []
        if self.manifests.is_dir():
            for dirpath, _dirs, files in os.walk(self.manifests):
                for file in files:
                    model = self._load(Path(dirpath) / file)
                    if model is not None:
                        found.append(model)
        found.sort(key=lambda m: m.modified_ns, reverse=True)
        return found

    def find(self, name: ModelName) -> InstalledModel | None:
        """The installed model Ollama would match for this name (case-insensitive)."""
        exact = self._load(self.manifest_path(name)) if self.manifest_path(name).is_file() else None
        if exact is not None:
            return exact
        return next((m for m in self.list() if m.name.key == name.key), None)

    def write_blob(self, layer: Layer) -> None:
        path = self.blob_path(layer.digest)
        if not path.is_file():
            tmp = path.with_name(path.name + "-tmp")
            tmp.write_bytes(layer.content)
            tmp.replace(path)

    def write_manifest(self, name: ModelName, entry: RegistryModel) -> None:
        """Write the manifest for `name` (blobs must already be present)."""

        def ref(layer: Layer) -> dict[str, Any]:
            return {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}

        config = entry.config_layer()
        self.write_blob(config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": _MANIFEST_MEDIA,
            "config": ref(config),
            "layers": [ref(layer) for layer in entry.layers()],
        }
        existing = self.find(name)
        path = existing.path if existing is not None else self.manifest_path(name)
        self._write_atomic(path, json.dumps(manifest, separators=(",", ":")).encode())

    def copy(self, source: InstalledModel, destination: ModelName) -> None:
        """`/api/copy`: the same manifest bytes under another name."""
        existing = self.find(destination)
        path = existing.path if existing is not None else self.manifest_path(destination)
        self._write_atomic(path, source.path.read_bytes())

    def delete(self, model: InstalledModel) -> None:
        """Remove the manifest, then every blob no other manifest references."""
        model.path.unlink(missing_ok=True)
        parent = model.path.parent
        while parent != self.manifests and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
        still_used = {digest for other in self.list() for digest in other.layers}
        for digest in set(model.layers) - still_used:
            self.blob_path(digest).unlink(missing_ok=True)

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
