"""Write files so that a crash never leaves a half-written file where a good one was.

Every artefact goes to a temporary file in the destination's folder, is synced to disk and renamed
over it in one step; used by every stage that writes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from glob import escape as glob_escape
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, overwrite: bool = True):
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; choose another name (nothing is overwritten)")
    with _temporary(path) as tmp:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)


def atomic_write(path: str | Path, write: Callable[[Path], None], overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, overwrite: bool = True) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite)


def atomic_write_together(texts: dict[str | Path, str]) -> list[Path]:
    """Write several new files so that they appear together or not at all.

    Every file is written and synced under a temporary name first; then they are renamed in the
    given order (put last the file whose presence means "done"), and if a rename fails, the files
    already renamed are removed again. Only a crash between two renames (microseconds) can leave
    the first ones alone. Existing files are never overwritten.
    """
    paths = [Path(p) for p in texts]
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} already exists; choose another name (nothing is overwritten)")
    placed: list[Path] = []
    with ExitStack() as stack:
        temporaries = [stack.enter_context(_temporary(path)) for path in paths]
        for tmp, text in zip(temporaries, texts.values()):
            tmp.write_text(text, encoding="utf-8")
            _fsync(tmp)
        try:
            for tmp, path in zip(temporaries, paths):
                if path.exists():
                    raise FileExistsError(f"{path} appeared while writing; nothing is overwritten")
                os.replace(tmp, path)
                placed.append(path)
        except BaseException:
            for path in placed:
                path.unlink(missing_ok=True)
            raise
        for folder in {path.parent for path in paths}:
            _fsync_folder(folder)
    return paths


def remove_stale_temporaries(folder: str | Path, prefix: str, older_than_s: float = 600) -> list[Path]:
    """Remove temporary files of writes that died (a kill -9): named `.<prefix>...tmp`, untouched for
    `older_than_s` seconds (a write in progress keeps touching its file, and is left alone)."""
    removed = []
    for path in Path(folder).glob(f".{glob_escape(prefix)}*.tmp"):
        try:
            if time.time() - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed


@contextmanager
def _temporary(path: Path):
    """A temporary file beside `path` with the usual permissions, removed unless renamed away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; give the usual permissions
    try:
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path: str | Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); Windows cannot open a folder for syncing and needs not."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
