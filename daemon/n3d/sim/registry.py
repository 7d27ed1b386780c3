"""The simulator's built-in registry: a handful of real library models.

Names, tags, sizes, families, parameter sizes and quantisations follow
ollama.com/library as of 2025; digests are deterministic sha256 values derived
from the name, so every run and every machine sees the same ones. Nothing here is
downloaded: a pull writes small placeholder blobs and a manifest. The templates
of the tools models use `.Tools`, as Ollama's do (it derives `tools` from that).

Long because the catalogue is data: one entry per model, with its template.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from n3d.ollama.names import DEFAULT_HOST, DEFAULT_NAMESPACE, ModelName

__all__ = ["Layer", "RegistryModel", "lookup", "models"]

_MEDIA = "application/vnd.ollama.image."


@dataclass(frozen=True, slots=True)
class Layer:
    """One manifest layer: media type, `sha256:<hex>` digest and size in bytes."""

    media_type: str
    digest: str
    size: int
    content: bytes  # what the placeholder blob holds (the config blob is real JSON)


@dataclass(frozen=True, slots=True)
class RegistryModel:
    """A pullable `model:tag` and the metadata Ollama reports for it."""

    model: str
    tag: str
    family: str
    parameter_size: str
    quantization: str
    model_bytes: int
    context_length: int
    embedding_length: int
    parameter_count: int
    capabilities: tuple[str, ...]
    template: str = "{{ .Prompt }}"
    license: str = "See the model's licence on ollama.com/library."
    parameters: str = ""

    @property
    def embedding_only(self) -> bool:
        return "completion" not in self.capabilities

    def config_json(self) -> bytes:
        """The manifest's config blob, with the fields Ollama reads for `details`."""
        config = {
            "model_format": "gguf",
            "model_family": self.family,
            "model_families": [self.family],
            "model_type": self.parameter_size,
            "file_type": self.quantization,
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "n3d_sim": {
                "context_length": self.context_length,
                "embedding_length": self.embedding_length,
                "parameter_count": self.parameter_count,
                "capabilities": list(self.capabilities),
            },
        }
        return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()

    def layers(self) -> list[Layer]:
        """Manifest layers in registry order: model, template, license, params."""

        def placeholder(kind: str, size: int) -> Layer:
            seed = f"n3d-sim/{self.model}:{self.tag}/{kind}".encode()
            digest = "sha256:" + hashlib.sha256(seed).hexdigest()
            return Layer(_MEDIA + kind, digest, size, b"n3d simulator placeholder for " + seed)

        out = [placeholder("model", self.model_bytes)]
        if not self.embedding_only:
            out.append(
                Layer(
                    _MEDIA + "template",
                    _sha(self.template.encode()),
                    len(self.template.encode()),
                    self.template.encode(),
                )
            )
        out.append(
            Layer(
                _MEDIA + "license",
                _sha(self.license.encode()),
                len(self.license.encode()),
                self.license.encode(),
            )
        )
        if self.parameters:
            params = self.parameters.encode()
            out.append(Layer(_MEDIA + "params", _sha(params), len(params), params))
        return out

    def config_layer(self) -> Layer:
        data = self.config_json()
        return Layer("application/vnd.docker.container.image.v1+json", _sha(data), len(data), data)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_LLAMA3_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Ollama derives the `tools` capability from a template that uses `.Tools`
# (images.go:106-114), and clients such as litellm read it there: the tools models'
# templates carry it, shortened from the library's.
_LLAMA32_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}"
    "{{ if .Tools }}\nYou have access to the following functions. To call a function, "
    'respond with JSON for a function call: {"name": function name, "parameters": '
    "dictionary of argument name and its value}.\n{{ range .Tools }}{{ . }}\n{{ end }}"
    "{{ end }}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_MISTRAL_TEMPLATE = (
    "{{ if .Tools }}[AVAILABLE_TOOLS] {{ json .Tools }}[/AVAILABLE_TOOLS]{{ end }}"
    "[INST] {{ .Prompt }} [/INST]"
)
_QWEN_TEMPLATE = (
    "<|im_start|>system\n{{ .System }}{{ if .Tools }}\n\n# Tools\n\n<tools>"
    "{{ range .Tools }}\n{{ . }}{{ end }}\n</tools>{{ end }}<|im_end|>\n"
    "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
)
_LLAMA3_PARAMS = '{"stop":["<|start_header_id|>","<|end_header_id|>","<|eot_id|>"]}'
_CHAT = ("completion",)
_TOOLS = ("completion", "tools")


def _m(
    model: str,
    tag: str,
    family: str,
    psize: str,
    quant: str,
    nbytes: int,
    ctx: int,
    emb: int,
    count: int,
    caps: tuple[str, ...] = _CHAT,
    template: str = "{{ .Prompt }}",
    params: str = "",
) -> RegistryModel:
    return RegistryModel(
        model,
        tag,
        family,
        psize,
        quant,
        nbytes,
        ctx,
        emb,
        count,
        caps,
        template=template,
        parameters=params,
    )


_LLAMA32_3B = _m(
    "llama3.2",
    "3b",
    "llama",
    "3.2B",
    "Q4_K_M",
    2019377376,
    131072,
    3072,
    3212749888,
    _TOOLS,
    _LLAMA32_TEMPLATE,
    _LLAMA3_PARAMS,
)
_LLAMA3_8B = _m(
    "llama3",
    "8b",
    "llama",
    "8.0B",
    "Q4_0",
    4661211424,
    8192,
    4096,
    8030261248,
    template=_LLAMA3_TEMPLATE,
    params=_LLAMA3_PARAMS,
)
_MISTRAL_7B = _m(
    "mistral",
    "7b",
    "llama",
    "7.2B",
    "Q4_0",
    4113289152,
    32768,
    4096,
    7248023552,
    _TOOLS,
    _MISTRAL_TEMPLATE,
    '{"stop":["[INST]","[/INST]"]}',
)
_PHI3_MINI = _m(
    "phi3",
    "mini",
    "phi3",
    "3.8B",
    "Q4_0",
    2176177120,
    131072,
    3072,
    3821079552,
    template="<|user|>\n{{ .Prompt }}<|end|>\n<|assistant|>\n",
    params='{"stop":["<|end|>","<|user|>","<|assistant|>"]}',
)
_QWEN25_7B = _m(
    "qwen2.5",
    "7b",
    "qwen2",
    "7.6B",
    "Q4_K_M",
    4683073184,
    32768,
    3584,
    7615616512,
    _TOOLS,
    _QWEN_TEMPLATE,
)
_NOMIC = _m(
    "nomic-embed-text",
    "v1.5",
    "nomic-bert",
    "137M",
    "F16",
    274290656,
    2048,
    768,
    136727040,
    ("embedding",),
)

_CATALOG: dict[tuple[str, str], RegistryModel] = {}
for _entry, _aliases in [
    (_LLAMA32_3B, ("latest", "3b")),
    (
        _m(
            "llama3.2",
            "1b",
            "llama",
            "1.2B",
            "Q8_0",
            1321082688,
            131072,
            2048,
            1235814432,
            _TOOLS,
            _LLAMA32_TEMPLATE,
            _LLAMA3_PARAMS,
        ),
        ("1b",),
    ),
    (_LLAMA3_8B, ("latest", "8b")),
    (
        _m(
            "qwen2.5",
            "0.5b",
            "qwen2",
            "494.03M",
            "Q4_K_M",
            397807936,
            32768,
            896,
            494032768,
            _TOOLS,
            _QWEN_TEMPLATE,
        ),
        ("0.5b",),
    ),
    (_QWEN25_7B, ("latest", "7b")),
    (_MISTRAL_7B, ("latest", "7b")),
    (_PHI3_MINI, ("latest", "mini")),
    (
        _m("tinyllama", "1.1b", "llama", "1B", "Q4_0", 637699456, 2048, 2048, 1100048384),
        ("latest", "1.1b"),
    ),
    (_NOMIC, ("latest", "v1.5")),
    (
        _m("all-minilm", "22m", "bert", "23M", "F16", 45949216, 512, 384, 22565376, ("embedding",)),
        ("latest", "22m"),
    ),
]:
    for _tag in _aliases:
        # An alias tag is the same bytes under another name, as on the real registry.
        _CATALOG[(_entry.model, _tag)] = _entry


def lookup(name: ModelName) -> RegistryModel | None:
    """The registry entry for a name (case-insensitive), or None if it does not exist."""
    if name.host.lower() != DEFAULT_HOST or name.namespace.lower() != DEFAULT_NAMESPACE:
        return None
    return _CATALOG.get((name.model.lower(), name.tag.lower()))


def models() -> list[tuple[str, RegistryModel]]:
    """Every pullable `model:tag` with its entry, for docs and `--list`."""
    return [(f"{model}:{tag}", entry) for (model, tag), entry in sorted(_CATALOG.items())]
