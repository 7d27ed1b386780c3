"""A generate or chat request, decoded and checked in the order Ollama's handlers do.

`decode` reads the body as `api.GenerateRequest` / `api.ChatRequest` (Go's decoder
errors for fields of the wrong type); `check_before_schedule` carries out the checks
GenerateHandler and ChatHandler make before they schedule a runner (routes.go,
v0.13.5; line numbers in the comments), after the model was found and the unload
case answered:
- `top_logprobs` outside 0..20: 400 (routes.go:187-189, 1866-1868), checked in
  `decode` since it comes before the model lookup;
- generate, `raw` with `template`, `system` or `context`: 400 (routes.go:330-332);
- generate, a string `think` on a model without the harmony parser: 400
  (routes.go:349-351);
- `think` on a model that cannot think: 400 `"m" does not support thinking`
  (routes.go:365-368, 2013-2016);
- a model without `completion`: 400 `"m" does not support generate|chat`
  (routes.go:372-375, 2019-2021).
The capabilities checked by `scheduleRunner` itself (`insert` for a `suffix`,
`tools` for `tools`) are lease.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from n3d.sim.app import HttpError
from n3d.sim.bodies import (
    get_bool,
    get_dict,
    get_int,
    get_list,
    get_str,
    keep_alive,
    parse_body,
    think,
)
from n3d.sim.store import InstalledModel
from n3d.sim.wire import go_quote

__all__ = ["InferRequest", "check_before_schedule", "decode"]


@dataclass(slots=True)
class InferRequest:
    """What the handlers use of a generate or chat body."""

    chat: bool
    model_text: str
    keep: float | None
    options: dict[str, Any]
    stream: bool
    prompt: str  # generate's prompt; chat's message contents, one per line
    empty: bool  # no prompt (generate) or no messages (chat): a load or an unload
    think: bool | str | None
    format_given: bool
    format: Any
    tools: list[Any] = field(default_factory=list)
    after_tool: bool = False  # the last message is a tool's result
    suffix: str = ""
    raw: bool = False
    system: str = ""
    template: str = ""
    context: list[Any] = field(default_factory=list)

    @property
    def struct(self) -> str:
        return "ChatRequest" if self.chat else "GenerateRequest"

    def wanted(self) -> tuple[str, ...]:
        """The capabilities scheduleRunner checks besides completion."""
        if self.chat:
            return ("tools",) if self.tools else ()
        return ("insert",) if self.suffix else ()


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise HttpError(
            400,
            "json: cannot unmarshal value into Go struct field "
            "ChatRequest.messages of type []api.Message",
        )
    for message in messages:
        for key in ("role", "content"):
            if message.get(key) is not None and not isinstance(message[key], str):
                raise HttpError(
                    400,
                    f"json: cannot unmarshal {type(message[key]).__name__} into Go struct "
                    f"field ChatRequest.messages.{key} of type string",
                )
    return messages


def decode(data: bytes, *, chat: bool) -> InferRequest:
    """The request in `data`, or HttpError(400) as gin's binding or the first check gives."""
    struct = "ChatRequest" if chat else "GenerateRequest"
    body = parse_body(data, struct)
    req = InferRequest(
        chat=chat,
        model_text=get_str(body, "model", struct),
        keep=keep_alive(body),
        options=get_dict(body, "options", struct),
        stream=get_bool(body, "stream", struct) is not False,
        prompt="",
        empty=True,
        think=think(body),
        format_given="format" in body,
        format=body.get("format"),
    )
    if chat:
        messages = _messages(body)
        req.prompt = "\n".join(str(m.get("content") or "") for m in messages)
        req.empty = not messages
        req.tools = get_list(body, "tools", struct, "api.Tools")
        req.after_tool = bool(messages) and messages[-1].get("role") == "tool"
    else:
        req.prompt = get_str(body, "prompt", struct)
        req.empty = req.prompt == ""
        req.suffix = get_str(body, "suffix", struct)
        req.system = get_str(body, "system", struct)
        req.template = get_str(body, "template", struct)
        req.raw = get_bool(body, "raw", struct) is True
        req.context = get_list(body, "context", struct, "[]int")
    if not 0 <= get_int(body, "top_logprobs", struct) <= 20:
        raise HttpError(400, "top_logprobs must be between 0 and 20")
    return req


def check_before_schedule(req: InferRequest, model: InstalledModel) -> None:
    """The handler's own checks between the unload case and scheduleRunner."""
    if not req.chat:
        if req.raw and (req.template or req.system or req.context):
            raise HttpError(400, "raw mode does not support template, system, or context")
        if isinstance(req.think, str):  # no simulated model has the harmony parser
            shown = go_quote(req.think)
            raise HttpError(400, f"think value {shown} is not supported for this model")
    if req.think and "thinking" not in model.capabilities:
        raise HttpError(400, f"{go_quote(req.model_text)} does not support thinking")
    if "completion" not in model.capabilities:
        verb = "chat" if req.chat else "generate"
        raise HttpError(400, f"{go_quote(req.model_text)} does not support {verb}")
