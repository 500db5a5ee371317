"""The weights-metadata checks, property-based: any JSON value either passes (and then is what the builder can
take safely) or is one LimitError; never another exception, never a build from an unchecked description."""
import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from spikeyolo.limits import LimitError
from spikeyolo.metadata import check_detector_metadata, check_model_yaml, check_snn_metadata
from tests.conftest import ROOT

import yaml

BASE = yaml.safe_load((ROOT / "configs/models/yolov8n-relu.yaml").read_text())
TEXT = st.text(max_size=10)
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(), TEXT),
                       lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
                       max_leaves=10)
PATHS = st.lists(st.one_of(st.sampled_from(["nc", "activation", "scales", "backbone", "head", "n", "scale"]),
                           st.integers(0, 30)), min_size=1, max_size=4)


def _replace(tree, path, value):
    """``tree`` with the node at ``path`` (keys / indices, clipped to what exists) replaced by ``value``."""
    tree = copy.deepcopy(tree)
    node = tree
    for step in path[:-1]:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            break
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    return tree


@settings(max_examples=300, deadline=None)
@given(path=PATHS, value=JSONISH)
def test_model_yaml_check_fuzzed(path, value):
    changed = _replace(BASE, path, value)
    json.dumps(changed)  # what a file can hold
    try:
        check_model_yaml(changed, "w.safetensors")
    except LimitError as err:
        assert str(err).startswith("w.safetensors: ")


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["names", "quantization", "imgsz", "events", "model_yaml", "format"]), value=JSONISH,
       snn=st.booleans())
def test_weights_metadata_check_fuzzed(key, value, snn):
    meta = {"format": "x", "model_yaml": BASE, "names": ["a"], "quantization": {"levels": 4, "layers": {}},
            "mode": "qcfs", "burst": 1, "initial_membrane": 0.5, "snm": False, "neurons": {}, "source": {}}
    meta[key] = value
    try:
        (check_snn_metadata if snn else check_detector_metadata)(meta, "w.safetensors")
    except LimitError as err:
        assert str(err).startswith("w.safetensors")
