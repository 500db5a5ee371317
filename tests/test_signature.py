"""--resume unpickles: only checkpoints this machine's spikeyolo runs signed are read; a stranger's payload never runs."""
import pytest
import torch

from spikeyolo.cli import main
from spikeyolo.quantize.signature import UnsignedCheckpoint, check_signed, sign, signature_path


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "config"))


class Payload:
    """Unpickling this writes a marker file (what a hostile last.pt would do, with worse commands)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_own_checkpoints_verify_and_anything_else_is_refused(tmp_path):
    own = tmp_path / "last.pt"
    own.write_bytes(b"checkpoint bytes")
    sign(own)
    check_signed(own)
    assert oct((tmp_path / "config" / "spikeyolo-checkpoint.key").stat().st_mode)[-3:] == "600"
    stranger = tmp_path / "their" / "last.pt"
    stranger.parent.mkdir()
    stranger.write_bytes(b"other bytes")
    with pytest.raises(UnsignedCheckpoint, match="not a checkpoint a spikeyolo run wrote on this machine"):
        check_signed(stranger)  # no signature
    signature_path(stranger).write_text(signature_path(own).read_text())
    with pytest.raises(UnsignedCheckpoint):
        check_signed(stranger)  # a signature copied from another file
    own.write_bytes(b"checkpoint bytes, changed")
    with pytest.raises(UnsignedCheckpoint):
        check_signed(own)  # changed after it was signed


def test_a_strangers_last_pt_never_runs(voc_dataset, tmp_path, capsys, monkeypatch):
    """Refused before anything reads it: torch.load is never called (whatever gadget a payload uses)."""
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    marker = tmp_path / "marker"
    evil = tmp_path / "last.pt"
    torch.save({"model": Payload(marker)}, evil)  # torch's own format, as a last.pt is
    signature_path(evil).write_text("0" * 64 + "\n")  # a forged signature does not help
    assert main(["train", "--data", str(voc_dataset), "--resume", str(evil), "--imgsz", "64", "--epochs", "1",
                 "--project", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a checkpoint a spikeyolo run wrote on this machine" in err[0]
    assert not marker.exists() and not loads and not (tmp_path / "runs").exists()
