"""Ollama's model-name grammar (`types/model/name.go`), with precise messages.

A name is `[scheme://]host/namespace/model:tag`. The tag is split off only when the
last `:` comes after the last `/` (so `host:port/ns/m` works); the rest is split from
the right on `/`. Missing parts take the defaults `registry.ollama.ai`, `library` and
`latest`. Each part starts with an ASCII letter, digit or `_`; later characters may
also be `-` and `_`, `.` (not in a namespace) and `:` (host only). Lengths: host
1-350, namespace/model/tag 1-80.

The display form is Ollama's `DisplayShortest` (`llama3` → `llama3:latest`), and two
names are the same model when their parts match ignoring case, as Ollama's
`getExistingName` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from n3d.errors import InvalidModelName, OllamaError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TAG",
    "ModelName",
    "normalize",
    "parse_model_name",
    "same_model",
    "validate",
]

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_LIMITS = {"host": 350, "namespace": 80, "model": 80, "tag": 80}
_EXTRA = {"host": "-_.:", "namespace": "-_", "model": "-_.", "tag": "-_."}


@dataclass(frozen=True, slots=True)
class ModelName:
    """A valid, fully qualified model name. Parts keep the case the user wrote."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def display(self) -> str:
        """Ollama's shortest display form: `model:tag`, `ns/model:tag` or the full name."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def key(self) -> str:
        """A case-folded identity: equal keys mean Ollama treats them as one model."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}".lower()

    def __str__(self) -> str:
        return self.display


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _part_problem(kind: str, text: str) -> str | None:
    """Why `text` is not a valid part of this kind, or None when it is."""
    if not text:
        return f"the {kind} is empty"
    if len(text) > _LIMITS[kind]:
        return f"the {kind} is {len(text)} characters long; at most {_LIMITS[kind]} are allowed"
    if not _is_word_char(text[0]):
        return f"the {kind} '{text}' must start with a letter, digit or '_'"
    allowed = _EXTRA[kind]
    for ch in text[1:]:
        if not (_is_word_char(ch) or ch in allowed):
            shown = "' '" if ch == " " else repr(ch)
            return f"the {kind} '{text}' contains {shown}, which is not allowed there"
    return None


def _cut_last(text: str, sep: str) -> tuple[str, str | None]:
    """Split on the last `sep`; the second half is None when `sep` is absent."""
    i = text.rfind(sep)
    if i < 0:
        return text, None
    return text[:i], text[i + len(sep) :]


def parse_model_name(text: str) -> ModelName:
    """Parse and validate a model name, filling in Ollama's defaults.

    Raises :class:`InvalidModelName` whose message says which part is wrong and why.
    """
    if not isinstance(text, str):
        raise OllamaError.invalid_name(repr(text), "a model name must be a string")
    raw = text
    if not raw:
        raise OllamaError.invalid_name(raw, "the name is empty")
    if "@" in raw:
        raise OllamaError.invalid_name(raw, "digest references (@sha256:...) are not supported")
    rest = raw
    tag: str | None = None
    if rest.rfind(":") > rest.rfind("/"):
        rest, tag = _cut_last(rest, ":")
    rest, model = _cut_last(rest, "/")
    namespace: str | None = None
    host: str | None = None
    if model is None:
        model, rest = rest, ""
    else:
        rest, namespace = _cut_last(rest, "/")
        if namespace is None:
            namespace, rest = rest, ""
        else:
            host = rest.split("://", 1)[1] if "://" in rest else rest
    parts = {
        "host": DEFAULT_HOST if host is None else host,
        "namespace": DEFAULT_NAMESPACE if namespace is None else namespace,
        "model": model,
        "tag": DEFAULT_TAG if tag is None else tag,
    }
    for kind, value in parts.items():
        problem = _part_problem(kind, value)
        if problem is not None:
            raise OllamaError.invalid_name(raw, problem)
    return ModelName(parts["host"], parts["namespace"], parts["model"], parts["tag"])


def normalize(text: str) -> str:
    """The display form of a valid name (`llama3` → `llama3:latest`)."""
    return parse_model_name(text).display


def same_model(a: str, b: str) -> bool:
    """True when Ollama would treat both names as the same installed model."""
    try:
        return parse_model_name(a).key == parse_model_name(b).key
    except InvalidModelName:
        return False


def validate(text: str) -> tuple[bool, str, str]:
    """`(valid, normalized, message)` for editors; never raises."""
    try:
        name = parse_model_name(text)
    except InvalidModelName as exc:
        return False, "", exc.message
    return True, name.display, f"'{text}' is a valid model name ({name.display})"
