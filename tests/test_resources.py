"""Shipped files are found in the source tree, or under <prefix>/share/spikeyolo for a wheel install."""
from spikeyolo import resources


def test_source_tree_first_then_installed_share(tmp_path, monkeypatch):
    source, installed = tmp_path / "src", tmp_path / "share"
    monkeypatch.setattr(resources, "SOURCE_ROOT", source)
    monkeypatch.setattr(resources, "INSTALLED_ROOT", installed)
    (installed / "weights").mkdir(parents=True)
    (installed / "weights/m.safetensors").write_bytes(b"x")
    assert resources.resource("weights/m.safetensors") == installed / "weights/m.safetensors"
    (source / "weights").mkdir(parents=True)
    (source / "weights/m.safetensors").write_bytes(b"x")
    assert resources.resource("weights/m.safetensors") == source / "weights/m.safetensors"
    assert resources.resource("weights/none.safetensors") == source / "weights/none.safetensors"  # for messages


def test_the_repository_ships_what_the_defaults_name():
    from spikeyolo.cli import CONFIGS
    from spikeyolo.detect.predictor import DEFAULT_EVENT_WEIGHTS, DEFAULT_WEIGHTS

    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_EVENT_WEIGHTS.is_file()
    assert {p.stem for p in CONFIGS.glob("*.yaml")} >= {"yolov8n", "yolov8n-relu", "tiny-yolo-leaky"}
