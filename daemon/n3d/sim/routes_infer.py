"""Inference routes: /api/generate and /api/chat.

Load (no prompt or messages) replies `done_reason: "load"` once the runner is up;
unload (`keep_alive: 0` and no prompt) replies `done_reason: "unload"` at once;
completions are carried out by the model's runner (`POST /completion`, one slot of
its queue), short and deterministic, streamed as NDJSON unless `stream:false` (the
headers go out with the first token, as gin's `c.Stream` does), and the final chunk
carries Ollama's counters and nanosecond durations (research/ollama.md §1;
`server/routes.go` GenerateHandler, ChatHandler). Requests are checked in the
handlers' order (infer_request.py, lease.py); `format` is checked when the
completion starts (llm/server.go:1512-1531: a 500 after the model loaded) and the
runner writes JSON that fits it. With `tools`, chat content that may be a tool call
is held back, as Ollama's `tools.Parser` holds it (tools/tools.go), and a call
comes out as `message.tool_calls` in a chunk of its own with empty content.
`hang_inference` holds a request before it reaches the scheduler; a client that
leaves cancels its request.
"""

from __future__ import annotations

import json
import random
import string
import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name
from n3d.sim import llm
from n3d.sim.app import App, HttpError
from n3d.sim.http import Request, Response
from n3d.sim.infer_request import InferRequest, check_before_schedule, decode
from n3d.sim.lease import Lease, installed, schedule
from n3d.sim.llm import RunnerError
from n3d.sim.structured import FormatError, check_format
from n3d.sim.text import token_ids
from n3d.sim.wire import go_json, rfc3339_utc

__all__ = ["chat", "generate"]

_TEMPLATE_TOKENS = {False: 5, True: 10}  # what the chat or generate template adds
_BARE_JSON = "application/json"  # streamResponse's type for an error before any write


async def generate(app: App, req: Request, resp: Response) -> None:
    await app.until_gone(req, _inference(app, req, resp, chat=False))


async def chat(app: App, req: Request, resp: Response) -> None:
    await app.until_gone(req, _inference(app, req, resp, chat=True))


def _tool_call_id() -> str:
    # routes.go:1845-1852 toolCallId: "call_" and 8 random lower-case letters or digits.
    return "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def _tool_calls(text: str, tools: list[Any]) -> list[dict[str, Any]]:
    """The calls in content a tools model wrote (`{"name", "parameters"}` objects)."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    names = {t["function"].get("name") for t in tools if isinstance(t.get("function"), dict)}
    calls = []
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        args = item.get("parameters", item.get("arguments")) if isinstance(item, dict) else None
        if isinstance(item, dict) and item.get("name") in names and isinstance(args, dict):
            function = {"index": index, "name": item["name"], "arguments": args}
            calls.append({"id": _tool_call_id(), "function": function})
    return calls


class _Reply:
    """Builds the response objects of one generate or chat request."""

    def __init__(self, req: InferRequest) -> None:
        self.req = req

    def __call__(self, reason: str, content: str = "", **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.req.model_text, "created_at": rfc3339_utc()}
        if self.req.chat:
            out["message"] = {"role": "assistant", "content": content}
            if "tool_calls" in extra:
                out["message"]["tool_calls"] = extra.pop("tool_calls")
        else:
            out["response"] = content
        out["done"] = bool(reason)
        if reason:
            out["done_reason"] = reason
        out.update(extra)
        return out


async def _inference(app: App, req: Request, resp: Response, *, chat: bool) -> None:
    started = time.monotonic_ns()
    ask = decode(req.body, chat=chat)
    if chat:
        try:
            parse_model_name(ask.model_text)
        except InvalidModelName:
            raise HttpError(400, "model is required") from None  # routes.go:1871-1874
    model = installed(app, ask.model_text, HttpError(404, f"model '{ask.model_text}' not found"))
    reply = _Reply(ask)
    await app.hold_inference()
    if ask.empty and ask.keep == 0:
        app.scheduler.expire(model)
        await app.reply_json(resp, 200, reply("unload"))
        return
    check_before_schedule(ask, model)
    lease = await schedule(app, model, ask.keep, ask.options, ask.wanted())
    try:
        if ask.empty:
            lease.end()
            await app.reply_json(resp, 200, reply("load"))
            return
        try:
            fmt = check_format(ask.format, ask.format_given)
        except FormatError as exc:
            raise HttpError(500, str(exc), _BARE_JSON if ask.stream else None) from None
        await _complete(app, resp, ask, lease, fmt, reply, started)
    finally:
        lease.end()


async def _complete(
    app: App,
    resp: Response,
    ask: InferRequest,
    lease: Lease,
    fmt: Any,
    reply: _Reply,
    started: int,
) -> None:
    await lease.take_slot()
    state = app.faults.state()
    pieces: list[str] = []
    held: list[str] = []  # chat content that may still turn out to be a tool call
    holding = bool(ask.chat and ask.tools)

    async def send(obj: dict[str, Any]) -> None:
        if not resp.streaming:
            await resp.start_stream(200, "application/x-ndjson")
        await app.faults_gate()
        await resp.write(go_json(obj) + b"\n")

    async def on_token(piece: str) -> None:
        nonlocal holding
        pieces.append(piece)
        if holding:
            held.append(piece)
            if "".join(held).lstrip()[:1] in ("", "{", "["):
                return
            holding = False  # tools.Parser: not a call, so everything is content
            piece, held[:] = "".join(held), []
        if ask.stream:
            await send(reply("", piece))

    sim = {
        "seed": lease.lm.model.name.display,
        "token_seconds": state.token_seconds * state.slow,
        "format": fmt,
        "tools": ask.tools if ask.chat else None,
        "after_tool": ask.after_tool,
    }
    try:
        final = await llm.completion(
            lease.lm.port,
            {"prompt": ask.prompt, "options": lease.options, "n3d_sim": sim},
            on_token,
        )
    except RunnerError as exc:
        raise HttpError(500, str(exc), _BARE_JSON if ask.stream else None) from None
    lease.end()
    calls = _tool_calls("".join(held), ask.tools) if held else []
    leftover = "" if calls else "".join(held)
    if ask.stream and (calls or leftover):
        await send(reply("", leftover, **({"tool_calls": calls} if calls else {})))
    prompt_count = int(final.get("prompt_eval_count", 0)) + _TEMPLATE_TOKENS[ask.chat]
    metrics: dict[str, Any] = {"tool_calls": calls} if calls and not ask.stream else {}
    if not ask.chat:
        metrics["context"] = token_ids(ask.prompt + "".join(pieces), prompt_count + len(pieces))
    metrics.update(
        {
            "total_duration": time.monotonic_ns() - started,
            "load_duration": lease.load_ns,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": prompt_count * 180_000,
            "eval_count": int(final.get("eval_count", len(pieces))),
            "eval_duration": int(final.get("eval_duration", 1)),
        }
    )
    text = "" if ask.stream or calls else "".join(pieces)
    final_reply = reply(str(final.get("done_reason") or "stop"), text, **metrics)
    if not ask.stream:
        await app.reply_json(resp, 200, final_reply)
        return
    await send(final_reply)
    await resp.end_stream()
