"""Checkpoints that a spikeyolo run wrote on this machine, told apart from anyone else's.

``--resume`` hands a ``last.pt`` to ultralytics, which unpickles it: a stranger's file would run its code. Every
checkpoint a spikeyolo training run writes gets a signature beside it (``last.pt.sig``: an HMAC-SHA256 of the file
under a key only this user holds, ``$YOLO_CONFIG_DIR/spikeyolo-checkpoint.key``, created on first use, mode 0600),
and ``check_signed`` refuses, before anything reads the file, a checkpoint without a valid one. A signature copied
from elsewhere, or a file changed after it was signed, does not verify.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_NAME = "spikeyolo-checkpoint.key"
CHUNK = 1 << 20


class UnsignedCheckpoint(ValueError):
    """A checkpoint this machine's spikeyolo runs did not write (or that changed since)."""


def _key_path() -> Path:
    return Path(os.environ.get("YOLO_CONFIG_DIR", Path.home() / ".config" / "spikeyolo")) / KEY_NAME


def _key(create: bool) -> bytes | None:
    """The user's signing key (created with ``create`` if missing: 32 random bytes, readable by the user only)."""
    path = _key_path()
    if not path.is_file():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another run made it meanwhile
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


def _digest(key: bytes, path: Path) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            mac.update(block)
    return mac.hexdigest()


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + ".sig")


def sign(path: str | Path) -> Path:
    """Write ``path``'s signature beside it; returns the signature's path."""
    path = Path(path)
    out = signature_path(path)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(_digest(_key(create=True), path) + "\n")
    os.replace(temporary, out)
    return out


def check_signed(path: str | Path, what: str = "--resume") -> None:
    """Nothing if ``path`` carries a valid signature of this user's runs, else one UnsignedCheckpoint."""
    path = Path(path)
    key, sig = _key(create=False), signature_path(path)
    expected = sig.read_text().strip() if sig.is_file() and sig.stat().st_size < 1000 else None
    if key is None or expected is None or not hmac.compare_digest(expected, _digest(key, path)):
        raise UnsignedCheckpoint(f"{what} {path}: not a checkpoint a spikeyolo run wrote on this machine (no valid "
                                 f"{sig.name} beside it), and resuming unpickles it: resume only your own runs; to "
                                 "start from someone's weights use 'spikeyolo train --from' (read without unpickling)")
