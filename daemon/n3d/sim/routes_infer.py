"""Inference routes: /api/generate and /api/chat.

Load (no prompt or messages) replies `done_reason: "load"` once the runner is up;
unload (`keep_alive: 0` and no prompt) replies `done_reason: "unload"` at once;
completions are carried out by the model's runner (`POST /completion`, one slot of
its queue), short and deterministic, streamed as NDJSON unless `stream:false` (the
headers go out with the first token, as gin's `c.Stream` does), and the final chunk
carries Ollama's counters and nanosecond durations (research/ollama.md §1;
`server/routes.go` GenerateHandler, ChatHandler). `hang_inference` holds a request
before it reaches the scheduler; a client that leaves cancels its request.
"""

from __future__ import annotations

import time
from typing import Any

from n3d.sim import llm
from n3d.sim.app import App, HttpError
from n3d.sim.bodies import get_bool, get_dict, get_str, keep_alive, parse_body
from n3d.sim.http import Request, Response
from n3d.sim.lease import installed, schedule
from n3d.sim.llm import RunnerError
from n3d.sim.text import token_ids
from n3d.sim.wire import go_json, go_quote, rfc3339_utc

__all__ = ["chat", "generate"]

_TEMPLATE_TOKENS = {False: 5, True: 10}  # what the chat or generate template adds


async def generate(app: App, req: Request, resp: Response) -> None:
    await app.until_gone(req, _inference(app, req, resp, chat=False))


async def chat(app: App, req: Request, resp: Response) -> None:
    await app.until_gone(req, _inference(app, req, resp, chat=True))


def _chat_prompt(body: dict[str, Any]) -> tuple[str, int]:
    messages = body.get("messages")
    if messages is None:
        return "", 0
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise HttpError(
            400,
            "json: cannot unmarshal value into Go struct field "
            "ChatRequest.messages of type []api.Message",
        )
    text = "\n".join(str(m.get("content", "")) for m in messages)
    return text, len(messages)


async def _inference(app: App, req: Request, resp: Response, *, chat: bool) -> None:
    started = time.monotonic_ns()
    struct = "ChatRequest" if chat else "GenerateRequest"
    body = parse_body(req.body, struct)
    keep = keep_alive(body)
    model_text = get_str(body, "model", struct)
    options = get_dict(body, "options", struct)
    stream = get_bool(body, "stream", struct) is not False
    if chat:
        prompt, count = _chat_prompt(body)
        empty = count == 0
        if not model_text:
            raise HttpError(400, "model is required")
    else:
        prompt = get_str(body, "prompt", struct)
        empty = prompt == ""
    model = installed(app, model_text, HttpError(404, f"model '{model_text}' not found"))

    def reply(reason: str, content: str = "", **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model_text, "created_at": rfc3339_utc()}
        if chat:
            out["message"] = {"role": "assistant", "content": content}
        else:
            out["response"] = content
        out["done"] = bool(reason)
        if reason:
            out["done_reason"] = reason
        out.update(extra)
        return out

    await app.hold_inference()
    if empty and keep == 0:
        app.scheduler.expire(model)
        await app.reply_json(resp, 200, reply("unload"))
        return
    if "completion" not in model.capabilities:
        verb = "chat" if chat else "generate"
        raise HttpError(400, f"{go_quote(model_text)} does not support {verb}")
    lease = await schedule(app, model, keep, options)
    try:
        if empty:
            lease.end()
            await app.reply_json(resp, 200, reply("load"))
            return
        await lease.take_slot()
        state = app.faults.state()
        pieces: list[str] = []

        async def on_token(piece: str) -> None:
            pieces.append(piece)
            if stream:
                if not resp.streaming:
                    await resp.start_stream(200, "application/x-ndjson")
                await app.faults_gate()
                await resp.write(go_json(reply("", piece)) + b"\n")

        sim = {"seed": model.name.display, "token_seconds": state.token_seconds * state.slow}
        try:
            final = await llm.completion(
                lease.lm.port, {"prompt": prompt, "options": options, "n3d_sim": sim}, on_token
            )
        except RunnerError as exc:
            raise HttpError(500, str(exc)) from None
        lease.end()
        prompt_count = int(final.get("prompt_eval_count", 0)) + _TEMPLATE_TOKENS[chat]
        metrics: dict[str, Any] = {}
        if not chat:
            metrics["context"] = token_ids(prompt + "".join(pieces), prompt_count + len(pieces))
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
        final_reply = reply(
            str(final.get("done_reason") or "stop"), "" if stream else "".join(pieces), **metrics
        )
        if not stream:
            await app.reply_json(resp, 200, final_reply)
            return
        if not resp.streaming:
            await resp.start_stream(200, "application/x-ndjson")
        await resp.write(go_json(final_reply) + b"\n")
        await resp.end_stream()
    finally:
        lease.end()
