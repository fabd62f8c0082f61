"""Writing a file or a folder so that nobody ever reads it half-written.

:func:`atomic_path` hands out a temporary path beside the target; the caller writes
there, and only when the block ends without an error is the result moved onto the
target. A run killed half-way leaves the previous version (or nothing) in place,
never a truncated array, model or dataset. Everything the project writes outside
Kedro's own datasets goes through here: the arrays and model folders, the embedded
dataset, and the training loop's checkpoints and best weights.

Plain Python: no kedro, torch or numpy import.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike[str], folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` on success.

    Args:
        target: the file or folder to (re)write; its parent is created.
        folder: ``False``: the yielded path is an empty file ending in
            ``target``'s suffix (``np.savez`` and friends add a suffix they miss),
            moved with ``os.replace``, which is atomic on one filesystem. ``True``:
            the yielded path is an empty folder; an existing ``target`` folder is
            renamed aside, the new one renamed in, then the old one deleted (a
            folder cannot be swapped in one step; a crash between the two renames
            leaves the old one as ``.<name>.old-*`` beside it).

    On any exception, including KeyboardInterrupt, the temporary path is deleted
    and ``target`` is left as it was. Permissions follow the umask, as a plain
    ``open``/``mkdir`` would (``tempfile`` makes them owner-only).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if folder:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
        os.chmod(tmp, 0o777 & ~_umask())
    else:
        fd, name = tempfile.mkstemp(
            dir=target.parent, prefix=prefix, suffix=target.suffix
        )
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        if not folder:
            os.replace(tmp, target)
        elif target.exists():
            old = Path(
                tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-")
            )
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
