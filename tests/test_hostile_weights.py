"""Weights from strangers: every malformed, oversized or code-carrying metadata is one line and exit 2, and
nothing the metadata names is run, imported or opened (a marker file shows that no code ran)."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from spikeyolo.checkpoint import CheckpointError, read_metadata
from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.cli import main
from spikeyolo.convert import convert
from spikeyolo.convert.artifact import save_snn
from tests.conftest import ROOT
from tests.convert.test_convert import live_model


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    model = live_model("yolov8n-relu", 4)
    detector = save_detector(model, folder / "m.safetensors", imgsz=64)
    snn = save_snn(convert(model, "qcfs"), folder / "snn.safetensors", {"weights": str(detector), "imgsz": 64})
    return detector, snn


def rewrite(source, target, mutate) -> str:
    """A copy of ``source`` whose spikeyolo metadata is ``mutate(meta)`` (a dict, or a raw string)."""
    with safe_open(str(source), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["spikeyolo"])
    changed = mutate(meta)
    changed = meta if changed is None else changed
    text = changed if isinstance(changed, str) else json.dumps(changed)
    save_file(tensors, str(target), metadata={"spikeyolo": text})
    return str(target)


def assert_one_line(capsys, *names):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    for name in names:
        assert name in err[0], (name, err[0])
    return err[0]


def _set(path, value):
    def mutate(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


CODE = "__import__('pathlib').Path('{marker}').write_text('ran')"

DETECTOR_CASES = {
    "activation-code": (_set(["model_yaml", "activation"], CODE), "model_yaml.activation"),
    "activation-call": (_set(["model_yaml", "activation"], "nn.ReLU(__import__('os').getpid())"), "activation"),
    "yaml-is-a-path": (_set(["model_yaml"], "/etc/passwd.yaml"), "model_yaml"),
    "module-not-allowed": (lambda m: m["model_yaml"]["backbone"][0].__setitem__(2, "TorchVision"), "module"),
    "module-eval": (lambda m: m["model_yaml"]["backbone"][0].__setitem__(2, "__import__('os').system"), "module"),
    "arg-string": (lambda m: m["model_yaml"]["backbone"][0][3].__setitem__(0, CODE), "args[0]"),
    "width-huge": (lambda m: m["model_yaml"]["scales"].__setitem__("n", [0.33, 1e6, 1024]), "scales.n[1]"),
    "channels-huge": (lambda m: m["model_yaml"]["backbone"][0][3].__setitem__(0, 10**9), "args[0]"),
    "params-huge": (lambda m: m["model_yaml"]["scales"].__setitem__("n", [2.0, 2.0, 4096]), "parameters"),
    "unknown-key": (_set(["model_yaml", "download"], "http://x"), "unknown keys"),
    "upsample-huge": (lambda m: m["model_yaml"]["head"][0][3].__setitem__(1, 64), "scale factor"),
    "bad-json": (lambda m: "{not json", "not valid JSON"),
    "a-list": (lambda m: "[1, 2]", "is not a spikeyolo-detector/1"),
    "no-names": (lambda m: m.pop("names") and None, "names"),
    "names-not-strings": (_set(["names"], [1, 2, 3]), "names"),
    "no-quantization": (lambda m: m.pop("quantization") and None, "quantization"),
    "levels-negative": (_set(["quantization", "levels"], -1), "quantization.levels"),
    "levels-string": (_set(["quantization", "levels"], "4"), "quantization.levels"),
    "levels-huge": (_set(["quantization", "levels"], 10**9), "quantization.levels"),
    "levels-fraction": (_set(["quantization", "levels"], 1.5), "quantization.levels"),
    "lambda-zero": (lambda m: next(iter(m["quantization"]["layers"].values())).__setitem__("threshold", 0.0),
                    "threshold"),
    "imgsz-negative": (_set(["imgsz"], -5), "imgsz"),
    "imgsz-huge": (_set(["imgsz"], 100000), "imgsz"),
}

SNN_CASES = {
    "burst-zero": (_set(["burst"], 0), "burst"),
    "channels-huge": (lambda m: next(iter(m["neurons"].values())).__setitem__("channels", 10**12), "channels"),
    "membrane-nan": (_set(["initial_membrane"], float("nan")), "initial_membrane"),
    "mode-unknown": (_set(["mode"], "magic"), "mode"),
    "activation-code": (_set(["model_yaml", "activation"], CODE), "model_yaml.activation"),
    "neurons-list": (_set(["neurons"], [1]), "neurons"),
}


@pytest.mark.parametrize("case", sorted(DETECTOR_CASES))
def test_hostile_detector_metadata(case, good, tmp_path, capsys):
    marker = tmp_path / "marker"
    mutate, field = DETECTOR_CASES[case]
    path = rewrite(good[0], tmp_path / "w.safetensors", lambda meta: _format_meta(meta, mutate, marker))
    for argv in (["detect", str(ROOT / "demo/bccd_pan.mp4"), "--weights", path, "--project", str(tmp_path / "out")],
                 ["val", "--weights", path, "--data", str(tmp_path / "nodata")],
                 ["convert", path, "--project", str(tmp_path / "o")],
                 ["benchmark", "--weights", path, "--imgsz", "64", "--timesteps", "1", "--repeats", "1"]):
        assert main(argv) == 2, argv
        assert_one_line(capsys, path, field)
    assert not marker.exists() and not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
    with pytest.raises(CheckpointError):
        read_metadata(path)


def _format_meta(meta, mutate, marker):
    """Apply ``mutate``, then put the marker's path into any code string."""
    result = mutate(meta)
    text = json.dumps(meta if result is None else result) if not isinstance(result, str) else result
    return text.replace("{marker}", str(marker))


@pytest.mark.parametrize("case", sorted(SNN_CASES))
def test_hostile_snn_metadata(case, good, tmp_path, capsys):
    marker = tmp_path / "marker"
    mutate, field = SNN_CASES[case]
    path = rewrite(good[1], tmp_path / "s.safetensors", lambda meta: _format_meta(meta, mutate, marker))
    assert main(["detect", str(ROOT / "demo/bccd_pan.mp4"), "--weights", path, "--project", str(tmp_path / "out")]) == 2
    assert_one_line(capsys, path, field)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_zero_lambda_in_the_tensors_is_refused(good, tmp_path, capsys):
    with safe_open(str(good[0]), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    key = next(k for k in tensors if k.endswith("act.threshold"))
    tensors[key] = tensors[key] * 0
    save_file(tensors, str(tmp_path / "z.safetensors"), metadata=meta)
    assert main(["convert", str(tmp_path / "z.safetensors"), "--project", str(tmp_path / "o")]) == 2
    assert_one_line(capsys, "z.safetensors", "is 0")
    assert not (tmp_path / "o").exists()


def test_snn_artifact_versions(good, tmp_path, capsys):
    """A newer format is one line (upgrade); /1 artifacts still load, except leaky layers converted with the old,
    one-level-off IBT neurons."""
    newer = rewrite(good[1], tmp_path / "new.safetensors", _set(["format"], "spikeyolo-snn/4"))
    assert main(["detect", str(ROOT / "demo/bccd_pan.mp4"), "--weights", newer, "--project", str(tmp_path / "out")]) == 2
    assert_one_line(capsys, "spikeyolo-snn/4", "upgrade spikeyolo")
    from spikeyolo.convert.artifact import load_snn

    images = torch.rand(1, 3, 64, 64)
    current = load_snn(good[1])(images, 2)
    for version in ("1", "2"):  # no graph in the file: rebuilt by the converter's rules of its time
        old = rewrite(good[1], tmp_path / f"old{version}.safetensors", _set(["format"], f"spikeyolo-snn/{version}"))
        assert load_snn(old).meta["mode"] == "qcfs" and torch.equal(load_snn(old)(images, 2), current)
    leaky = save_snn(convert(live_model("tiny-yolo-leaky", 4), "qcfs"), tmp_path / "leaky.safetensors")
    old_leaky = rewrite(leaky, tmp_path / "old-leaky.safetensors", _set(["format"], "spikeyolo-snn/1"))
    with pytest.raises(CheckpointError, match="old IBT neurons"):
        load_snn(old_leaky)


def test_an_snn_artifact_names_no_file_to_open_elsewhere(good, tmp_path, monkeypatch):
    """source.weights in an artifact is followed only to a file beside it (where convert writes), never elsewhere."""
    import shutil

    from spikeyolo.convert import load

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(good[0], elsewhere / "other.safetensors")
    named = str(elsewhere / "other.safetensors")
    path = rewrite(good[1], tmp_path / "s.safetensors", _set(["source", "weights"], named))
    opened = []
    monkeypatch.setattr(load, "load_detector", lambda p, *a, **k: (opened.append(p), None))
    assert load.load_model(path).ann is None and opened == []
    shutil.copy(good[0], tmp_path / "other.safetensors")  # the same name beside the artifact: that one is read
    load.load_model(path)
    assert opened == [tmp_path / "other.safetensors"]


def _drop_neuron(meta):
    meta["graph"]["neurons"].pop("model.4.cv1")


GRAPH_CASES = {  # an SNN artifact's graph is what the file is rebuilt from: every lie is one line
    "unknown-kind": (_set(["graph", "neurons", "model.0", "kind"], "lif"), "must give kind"),
    "kind-against-slope": (_set(["graph", "neurons", "model.0", "kind"], "ibt"), "needs negative slope"),
    "missing-neuron": (_drop_neuron, "leaves model.4.cv1.act unconverted"),
    "no-such-module": (_set(["graph", "accumulators"], ["model.99.cv2"]), "names 'model.99.cv2', which is not a Conv2d"),
    "pool-is-a-conv": (_set(["graph", "pools"], {"model.0.conv.layer": 1}), "which is not a MaxPool2d"),
    "path-like-name": (_set(["graph", "constant_input"], ["../x"]), "graph.constant_input must name modules"),
    "huge-uses": (_set(["graph", "pools", "model.9.m"], 10**9), "graph.pools.model.9.m"),
    "neurons-a-list": (_set(["graph", "neurons"], ["model.0"]), "graph.neurons must map module names"),
    "pools-a-list": (_set(["graph", "pools"], ["model.9.m"]), "graph.pools must map module names"),
}


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_an_snn_graph_that_lies_is_refused_in_one_line(case, good, tmp_path, capsys):
    mutate, expected = GRAPH_CASES[case]
    bad = rewrite(good[1], tmp_path / "bad.safetensors", mutate)
    assert main(["detect", str(ROOT / "demo/bccd_pan.mp4"), "--weights", bad, "--project", str(tmp_path / "out")]) == 2
    assert_one_line(capsys, "bad.safetensors", expected)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.mp4"))
