"""The one atomic writer: a file (or folder) appears under its final name complete, or not at all.

Everything is written under a temporary name beside the final one (``.NAME.tmpPID…``), flushed to disk (fsync)
and renamed; on any exception the temporary is removed, and temporaries still pending when the process is
terminated (SIGTERM, handled by the CLI) or exits are removed too. Output paths are checked before work starts
(``check_output_file`` / ``check_output_dir``), so a run never computes for an hour and then fails to save.
"""
from __future__ import annotations

import atexit
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

_PENDING: set[Path] = set()


def _file_mode() -> int:
    """0666 less the process's umask (usually 0644): what a plainly created file gets. Some writers (safetensors)
    create 0600 files; every output is given this mode before it takes its final name."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


class OutputError(OSError):
    """An output path that cannot be written; the message names it and what to do."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """``final`` written under ``tmp`` (same folder, same suffix); ``commit()`` renames it, ``abort()`` removes it."""

    def __init__(self, final: str | Path):
        self.final = Path(final)
        self.tmp = self.final.with_name(f".{self.final.stem}.tmp{os.getpid()}{self.final.suffix}")
        _PENDING.add(self.tmp)

    def commit(self) -> Path:
        try:
            if not self.tmp.is_file() or (self.tmp.stat().st_size == 0 and self.final.suffix in (".mp4", ".png",
                                                                                                  ".jpg")):
                raise OutputError(f"{self.final} could not be written (is the disk full?)")
            _fsync(self.tmp)
            os.chmod(self.tmp, FILE_MODE)
            os.replace(self.tmp, self.final)
        except BaseException:
            self.abort()
            raise
        _PENDING.discard(self.tmp)
        return self.final

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)
        _PENDING.discard(self.tmp)


@contextmanager
def atomic_path(final: str | Path):
    """``with atomic_path(p) as tmp:`` write ``tmp``; it becomes ``p`` when the block ends without an exception."""
    target = AtomicFile(final)
    try:
        yield target.tmp
    except BaseException:
        target.abort()
        raise
    target.commit()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextmanager
def atomic_dir(final: str | Path):
    """A folder built under a temporary name and renamed (replacing an older one); removed on any failure."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _PENDING.add(tmp)
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _PENDING.discard(tmp)


def remove_pending() -> None:
    """Remove every temporary still being written (on termination or exit)."""
    for path in list(_PENDING):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        _PENDING.discard(path)


atexit.register(remove_pending)


def _writable_dir(folder: Path, option: str) -> None:
    probe = folder / f".spikeyolo-probe{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"{option} {folder}: cannot write there ({err.strerror or err}): choose a writable "
                          f"folder") from None


def check_output_dir(folder: str | Path, option: str) -> None:
    """``folder`` (existing or to be created) can take new files: else one OutputError, before any work."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {folder}: {existing} is a file, not a folder: choose a folder")
    _writable_dir(existing, option)


def check_output_file(path: str | Path, option: str) -> None:
    """``path`` can be written as a file: not a folder, in a writable (or creatable) folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder: give a file name")
    check_output_dir(path.parent, option)
