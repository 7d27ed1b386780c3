"""Replace a file's contents so that readers, and a crash, see the old file or the new one.

:func:`write_atomically` is the one way n3d rewrites a file it keeps (the warm
list in the state dir, the service units it installs):

1. a temporary file is created in the same directory (a rename is atomic only
   within one file system), with ``mode`` from the start;
2. the data is written and ``fsync``-ed, so the rename cannot reach the disk before
   the bytes do (ext4 and XFS may otherwise leave an empty file after a power loss);
3. it is renamed over the target;
4. the directory is ``fsync``-ed, so the rename itself is on disk.

On any failure the temporary file is removed and the target is left as it was.
Errors are the OSError that happened: each caller translates it into its own
:class:`~n3d.errors.N3dError`, naming the path, where it knows what was being saved.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: str | bytes, *, mode: int = 0o600) -> None:
    """Make ``path`` contain ``data`` (text as UTF-8) with permission bits ``mode``.

    The directory must exist. Blocking: from async code, run it in a worker thread.
    Raises OSError, with the target unchanged (no temporary file left behind).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # mkstemp made it 0600; before any data lands
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the rename is done all the same.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
