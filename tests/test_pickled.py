"""Users' .pt checkpoints read without running their code: payloads refused or inert, real checkpoints mapped."""
import hashlib
import re
import sys
import types

import pytest
import torch

from spikeyolo.checkpoint import CheckpointError
from spikeyolo.cli import main
from spikeyolo.importing import import_checkpoint
from spikeyolo.pickled import read_pickled_checkpoint
from tests.conftest import ROOT

YOLOV5 = ROOT.parent / "shared" / "weights" / "yolov5n-v6.1-coco.pt"


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_payload_naming_a_function_outside_the_model_namespaces_is_refused(tmp_path, capsys):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model": _SystemPayload(marker)}, path)
    with pytest.raises(CheckpointError, match="names posix.system|names os.system"):
        read_pickled_checkpoint(path)
    assert main(["import", str(path), "--project", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "system" in err[0] and "was not loaded" in err[0]
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_a_class_in_a_model_namespace_becomes_an_inert_stand_in(tmp_path, monkeypatch):
    """A class named like YOLOv5's, whose real __setstate__ would write a file: the stand-in runs none of it."""
    marker = tmp_path / "marker"
    module = types.ModuleType("models.common")

    class Evil:
        def __setstate__(self, state):
            marker.write_text("ran")

    Evil.__module__, Evil.__qualname__ = "models.common", "Evil"
    module.Evil = Evil
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.common", module)
    evil = Evil()
    evil.__dict__["names"] = ["a"]
    torch.save({"model": evil}, tmp_path / "evil.pt")  # the class stays importable: a real unpickle would run it
    with pytest.raises(CheckpointError):  # no tensors, so not a detector; what matters: nothing ran
        import_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.skipif(not YOLOV5.is_file(), reason="../shared/weights not present")
def test_the_official_yolov5n_checkpoint_maps_onto_v5u(tmp_path, capsys):
    assert hashlib.sha256(YOLOV5.read_bytes()).hexdigest().startswith("4f180cf23ba0717a")
    source = read_pickled_checkpoint(YOLOV5)
    assert source.model_class == "models.yolo.Model" and len(source.names) == 80 and source.names[0] == "person"
    imported = import_checkpoint(YOLOV5, "nn.ReLU()")
    assert len(imported.carried) == 342 and all(k.startswith("model.24.") for k in imported.initialized)
    state = imported.model.state_dict()
    assert all(torch.equal(state[k], source.state[k]) for k in imported.carried)  # carried exactly
    assert type(imported.model.model[0].act).__name__ == "ReLU"
    with torch.no_grad():
        assert imported.model(torch.rand(1, 3, 64, 64))[0].shape == (1, 84, 84)
    assert main(["import", str(YOLOV5), "--project", str(tmp_path), "--activation", "nn.ReLU()"]) == 0
    assert "342 tensors carried, 85 initialized" in capsys.readouterr().out


def test_a_damaged_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["import", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.pt" in err[0]


def _saved(model, path, names=("a",)):
    model.names = list(names)
    torch.save({"model": model}, path)
    return path


def _chain(depth: int, fan: int = 1) -> torch.nn.Module:
    """``depth`` nested Sequentials; with ``fan`` > 1 every level holds the next ``fan`` times (a shared module)."""
    inner = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    for _ in range(depth):
        inner = torch.nn.Sequential(*[inner] * fan)
    return inner


@pytest.mark.parametrize("case, expected", [
    ("cycle", "its model holds a module inside itself (at loop)"),
    ("deep", "its model nests modules deeper than 64"),
    ("shared", "its model has more than 100000 modules"),
    ("expanded", "model.weight claims shape (100000, 100000) on 2 bytes of storage (an expanded view"),
])
def test_hostile_module_trees_and_tensors_are_one_line(case, expected, tmp_path, capsys):
    """A cyclic tree (a RecursionError before), 2,000 levels deep, 2^30 visits through shared modules, and a
    half-precision view expanded to 10^10 elements (40 GB once made float32): refused before any of it."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    if case == "cycle":
        model._modules["loop"] = model
    elif case == "deep":  # deeper than Python's recursion limit: saving it needs a higher one, reading must not
        model = _chain(2_000)
    elif case == "shared":
        model = _chain(30, fan=2)
    elif case == "expanded":
        model.register_buffer("weight", torch.zeros(1, dtype=torch.half).expand(100_000, 100_000))
        model = torch.nn.Sequential(model)  # under "model."
        model._modules["model"] = model._modules.pop("0")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        path = _saved(model, tmp_path / "hostile.pt")
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        read_pickled_checkpoint(path)
    assert main(["import", str(path), "--project", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and not (tmp_path / "o").exists()


def test_a_compressed_or_oversized_archive_is_refused_before_unpacking(tmp_path, monkeypatch):
    """torch.save stores records uncompressed: a deflated one (a 5 MB file inflating to 5 GB) is refused from the
    zip directory, as is an archive whose records add up to more than MAX_PT_BYTES."""
    import zipfile

    import spikeyolo.pickled as pickled

    plain = _saved(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), tmp_path / "plain.pt")
    packed = tmp_path / "packed.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(packed, "w") as target:
        for entry in source.infolist():  # the tensors' records deflated, the rest as torch wrote it
            target.writestr(entry.filename, source.read(entry),
                            zipfile.ZIP_DEFLATED if "/data/" in entry.filename else zipfile.ZIP_STORED)
    with pytest.raises(CheckpointError, match=r"record plain/data/0 is compressed, which torch.save never writes"):
        read_pickled_checkpoint(packed)
    assert read_pickled_checkpoint(plain).state  # the same, stored as torch stores it, reads
    legacy = tmp_path / "legacy.pt"  # torch < 1.6's format: storage sizes come from the pickle, not a directory
    torch.save({"model": torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="is not a zip archive, the format torch.save has written since"):
        read_pickled_checkpoint(legacy)
    monkeypatch.setattr(pickled, "MAX_PT_BYTES", 1000)
    with pytest.raises(CheckpointError, match=r"unpacks to 0.0 GB, more than the 0 GB"):
        read_pickled_checkpoint(plain)
