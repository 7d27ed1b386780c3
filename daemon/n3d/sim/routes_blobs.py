"""`HEAD|POST /api/blobs/:digest`: the blob store a client uploads to before `create`.

As Ollama's HeadBlobHandler and CreateBlobHandler (routes.go:1308-1368, v0.13.5):
the digest must be `sha256:<64 hex>` (or `sha256-...`), else 400 `invalid digest
format`; HEAD answers an empty 200 when the blob is on disk and 404 `blob "d" not
found` when not; POST answers an empty 200 when the blob is already there, and
otherwise stores the body under its own sha256 and answers 201, or 400 `digest
mismatch, expected "d", got "sha256:..."` when that is not the digest asked for (the
blob is kept all the same, as NewLayer has already written it).
"""

from __future__ import annotations

import hashlib
import re

from n3d.sim.app import App, HttpError
from n3d.sim.http import Request, Response
from n3d.sim.wire import go_quote

__all__ = ["create_blob", "head_blob"]

_DIGEST = re.compile(r"sha256[:-][0-9a-fA-F]{64}")


def _digest(req: Request) -> str:
    digest = req.params.get("digest", "")
    if digest and not _DIGEST.fullmatch(digest):
        raise HttpError(400, "invalid digest format")
    return digest


async def head_blob(app: App, req: Request, resp: Response) -> None:
    digest = _digest(req)
    if not app.store.has_blob(digest.replace("-", ":", 1)):
        raise HttpError(404, f"blob {go_quote(digest)} not found")
    await resp.send(200)


async def create_blob(app: App, req: Request, resp: Response) -> None:
    digest = _digest(req)
    if app.store.has_blob(digest.replace("-", ":", 1)):
        await resp.send(200)
        return
    actual = "sha256:" + hashlib.sha256(req.body).hexdigest()
    path = app.store.blob_path(actual)
    if not path.is_file():
        tmp = path.with_name(path.name + "-partial-upload")
        tmp.write_bytes(req.body)
        tmp.replace(path)
    if actual != digest:
        raise HttpError(
            400, f"digest mismatch, expected {go_quote(digest)}, got {go_quote(actual)}"
        )
    await resp.send(201)
