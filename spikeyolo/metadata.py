"""What a weights file's metadata may say, checked before anything is built from it.

A ``.safetensors`` file cannot run code, but its metadata is handed to ultralytics' model builder, which
evaluates strings (``activation``) and imports names (layer modules), and its numbers size allocations. So the
model yaml must be a dict of known keys, layers from an allow-list with literal arguments, an activation that is
a ``torch.nn`` constructor with literal arguments, and every number within ``spikeyolo.limits``; a parameter
count bounded from above before building. Anything else is one ``LimitError`` naming the file and the field.
"""
from __future__ import annotations

import ast
import math
import re

from spikeyolo.limits import (MAX_BURST, MAX_CHANNELS, MAX_CLASSES, MAX_LAYERS, MAX_LEVELS, MAX_PARAMETERS,
                              MAX_TIMESTEPS, MAX_REPEATS, MAX_SCALE, MAX_SENSOR, LimitError, image_size, integer, real)

LAYERS = {"Conv", "C2f", "C3", "C3k2", "C2PSA", "SPPF", "SPP", "Concat", "Detect", "Bottleneck", "C1", "C2", "C3x",
          "DWConv", "Focus", "BottleneckCSP", "GhostConv", "C3Ghost", "RepC3", "nn.Upsample", "nn.MaxPool2d",
          "nn.ZeroPad2d", "nn.Identity"}
ACTIVATIONS = {"ReLU", "LeakyReLU", "SiLU", "Identity", "Hardswish", "ReLU6", "GELU", "Mish", "Sigmoid", "Tanh"}
YAML_KEYS = {"nc", "activation", "scales", "scale", "backbone", "head", "depth_multiple", "width_multiple",
             "yaml_file", "channels", "ch", "reg_max", "anchors"}
ARG_WORDS = {"nc", "nearest", "None", "bilinear"}
NO_WEIGHTS = {"Concat", "Detect", "nn.Upsample", "nn.MaxPool2d", "nn.ZeroPad2d", "nn.Identity"}


def _fail(where: str, field: str, what: str) -> LimitError:
    return LimitError(f"{where}: {field} {what}")


def check_activation(spec, where: str) -> None:
    """``nn.ReLU()``, ``torch.nn.LeakyReLU(0.1)``, …: an allowed torch.nn class called with literal numbers only."""
    try:
        call = ast.parse(str(spec).strip(), mode="eval").body
        names, node = [], call.func
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        names.append(node.id)
        literals = [*call.args, *(k.value for k in call.keywords)]
        ok = (isinstance(spec, str) and names[0] in ACTIVATIONS and names[1:] in (["nn"], ["nn", "torch"])
              and all(isinstance(a, ast.Constant) and isinstance(a.value, (int, float, bool)) for a in literals)
              and all(k.arg in ("inplace", "negative_slope") for k in call.keywords))
    except (SyntaxError, AttributeError, IndexError, ValueError, TypeError):
        ok = False
    if not ok:
        raise _fail(where, "model_yaml.activation", f"must be a torch.nn activation ({', '.join(sorted(ACTIVATIONS))}) "
                    f"with literal arguments, e.g. nn.ReLU(), got {str(spec)[:80]!r}")


def _check_arg(value, where: str, field: str, first: bool) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        integer(abs(value), where, field, 0, MAX_CHANNELS if first else 64)
    elif isinstance(value, float):
        real(value, where, field, -1e3, 1e3)
    elif isinstance(value, list) and len(value) <= 8 and all(type(v) is int for v in value):
        for v in value:  # e.g. nn.ZeroPad2d's [left, right, top, bottom]
            integer(abs(v), where, field, 0, 64)
    elif not (isinstance(value, str) and value in ARG_WORDS):
        raise _fail(where, field, f"must be a number, None, true/false or one of {sorted(ARG_WORDS)}, got {value!r}")


def _scales(yaml: dict, where: str) -> tuple[float, float, float]:
    """(depth, width, max_channels) as ultralytics' parse_model will read them."""
    depth = real(yaml.get("depth_multiple", 1.0), where, "model_yaml.depth_multiple", 0, MAX_SCALE, low_open=True)
    width = real(yaml.get("width_multiple", 1.0), where, "model_yaml.width_multiple", 0, MAX_SCALE, low_open=True)
    scales = yaml.get("scales")
    if not scales:
        return depth, width, float(MAX_CHANNELS)
    if not isinstance(scales, dict) or len(scales) > 8:
        raise _fail(where, "model_yaml.scales", "must map at most 8 scale names to [depth, width, max_channels]")
    scale = yaml.get("scale") or next(iter(scales))
    if not isinstance(scale, str) or scale not in scales:
        raise _fail(where, "model_yaml.scale", f"{scale!r} is not one of the scales {list(scales)}")
    for name, triple in scales.items():
        field = f"model_yaml.scales.{name}"
        if not isinstance(triple, list) or len(triple) != 3:
            raise _fail(where, field, f"must be [depth, width, max_channels], got {triple!r}")
        real(triple[0], where, f"{field}[0]", 0, MAX_SCALE, low_open=True)
        real(triple[1], where, f"{field}[1]", 0, MAX_SCALE, low_open=True)
        integer(triple[2], where, f"{field}[2]", 8, MAX_CHANNELS)
    depth, width, max_channels = scales[scale]
    return float(depth), float(width), float(max_channels)


def _layer(entry, index: int, where: str) -> tuple[list[int], int, str, list]:
    field = f"model_yaml layer {index}"
    if not isinstance(entry, list) or len(entry) != 4:
        raise _fail(where, field, f"must be [from, repeats, module, args], got {str(entry)[:80]}")
    source, repeats, module, args = entry
    sources = source if isinstance(source, list) else [source]
    if not sources or len(sources) > 8:
        raise _fail(where, f"{field} from", "must name 1 to 8 earlier layers")
    for s in sources:
        integer(s, where, f"{field} from", -index if index else -1, index - 1 if index else -1)
    integer(repeats, where, f"{field} repeats", 1, MAX_REPEATS)
    if not isinstance(module, str) or module not in LAYERS:
        raise _fail(where, f"{field} module", f"must be one of {', '.join(sorted(LAYERS))}, got {str(module)[:60]!r}")
    if not isinstance(args, list) or len(args) > 8:
        raise _fail(where, f"{field} args", "must be a list of at most 8 literals")
    for j, arg in enumerate(args):
        _check_arg(arg, where, f"{field} args[{j}]", first=j == 0 and module not in NO_WEIGHTS)
    if module == "nn.Upsample" and len(args) > 1:  # every activation after it grows by its square
        integer(args[1], where, f"{field} scale factor", 1, 4)
    return sources, repeats, module, args


def check_anchors(anchors, where: str) -> list[list[float]]:
    """``anchors`` as a model yaml may give them: 3 levels of 3 (w, h) pairs in pixels, each in (0, 4096]."""
    good = (isinstance(anchors, list) and len(anchors) == 3
            and all(isinstance(level, list) and len(level) == 6 for level in anchors)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 4096
                    for level in anchors for v in level))
    if not good:
        raise ValueError(f"{where}: model_yaml.anchors must be 3 lists of 3 (w, h) pixel pairs, each in (0, 4096]")
    return [[float(v) for v in level] for level in anchors]


def check_model_yaml(yaml, where: str, nc: int | None = None) -> None:
    """A model description safe to hand to ultralytics' builder, whose parameter count is bounded."""
    if not isinstance(yaml, dict):
        raise _fail(where, "model_yaml", f"must be a mapping (the model description), got {type(yaml).__name__}")
    unknown = sorted(str(k) for k in yaml if k not in YAML_KEYS)
    if unknown:
        raise _fail(where, "model_yaml", f"has unknown keys {unknown[:5]}: it may use {sorted(YAML_KEYS)}")
    if "activation" in yaml:
        check_activation(yaml["activation"], where)
    integer(yaml.get("nc", 1), where, "model_yaml.nc", 1, MAX_CLASSES)
    channels = integer(yaml.get("channels", yaml.get("ch", 3)), where, "model_yaml.channels", 1, 4)
    if not isinstance(yaml.get("yaml_file", ""), str) or len(yaml.get("yaml_file", "")) > 1000:
        raise _fail(where, "model_yaml.yaml_file", "must be a short string")
    integer(yaml.get("reg_max", 16), where, "model_yaml.reg_max", 1, 64)
    if "anchors" in yaml:
        try:
            check_anchors(yaml["anchors"], where)
        except ValueError as err:
            raise LimitError(str(err)) from None
    depth, width, max_channels = _scales(yaml, where)
    layers = [yaml.get("backbone"), yaml.get("head")]
    if not all(isinstance(part, list) for part in layers) or not 1 <= len(layers[0]) + len(layers[1]) <= MAX_LAYERS:
        raise _fail(where, "model_yaml", f"needs backbone and head lists of 1 to {MAX_LAYERS} layers together")
    entries = layers[0] + layers[1]
    estimate = parameter_bound(entries, channels, depth, width, max_channels, nc or yaml.get("nc", 1), where)
    if estimate > MAX_PARAMETERS:
        raise _fail(where, "model_yaml", f"would build up to {estimate:,} parameters (limit {MAX_PARAMETERS:,})")


def parameter_bound(entries: list, channels: int, depth: float, width: float, max_channels: float, nc: int,
                    where: str) -> int:
    """An upper bound on the parameters ultralytics builds from these layers (generous: every block is counted as
    repeats + 2 full convolutions of its widest shape)."""
    widths, total = [], 0
    for index, entry in enumerate(entries):
        sources, repeats, module, args = _layer(entry, index, where)
        inputs = [widths[s] if s >= 0 else (widths[s] if widths else channels) for s in sources]
        c_in = sum(inputs)
        if module == "Concat":
            c_out = c_in
        elif module == "Detect":
            c_out, total = c_in, total + sum(4 * c * max(c, 64, nc) * 9 for c in inputs)
        elif module in NO_WEIGHTS or not args or not isinstance(args[0], int):
            c_out = c_in
        else:
            c_out = min(math.ceil(min(args[0], max_channels) * width / 8) * 8, MAX_CHANNELS)
            kernel = args[1] if module in ("Conv", "DWConv", "GhostConv", "SPPF") and len(args) > 1 \
                and isinstance(args[1], int) and module != "SPPF" else 3
            n = max(round(repeats * depth), 1) if repeats > 1 else repeats
            total += (n + 2) * max(c_in, c_out) * c_out * kernel * kernel
        if c_out > MAX_CHANNELS:
            raise _fail(where, f"model_yaml layer {index}", f"has {c_out} channels (limit {MAX_CHANNELS})")
        widths.append(c_out)
    return total


def check_names(names, where: str) -> list[str]:
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES \
            or not all(isinstance(n, str) and 0 < len(n) <= 200 for n in names):
        raise _fail(where, "names", f"must be a list of 1 to {MAX_CLASSES} class names (strings)")
    return names


def _mapping(meta: dict, key: str, where: str, required: bool = True) -> dict:
    value = meta.get(key, None if required else {})
    if not isinstance(value, dict):
        raise _fail(where, key, f"must be a mapping, got {type(value).__name__}")
    return value


def check_event_input(events, where: str) -> None:
    """How an event model's frames were made (window, clip, sensor): read by detect and webcam."""
    if events is None:
        return
    if not isinstance(events, dict):
        raise _fail(where, "events", "must be a mapping")
    integer(events.get("window_us", 1), where, "events.window_us", 1, 10**8)
    real(events.get("clip", 1), where, "events.clip", 0, 255, low_open=True)
    sensor = events.get("sensor", [1, 1])
    if not isinstance(sensor, list) or len(sensor) != 2:
        raise _fail(where, "events.sensor", "must be [width, height]")
    for side in sensor:
        integer(side, where, "events.sensor", 1, MAX_SENSOR)


def check_detector_metadata(meta: dict, where: str) -> None:
    """A detector checkpoint's metadata: model yaml, class names, QCFS spec, image size."""
    names = check_names(meta.get("names"), where)
    check_model_yaml(meta.get("model_yaml"), where, len(names))
    spec = _mapping(meta, "quantization", where)
    if spec.get("levels") is not None:
        integer(spec["levels"], where, "quantization.levels", 1, MAX_LEVELS)
    for name, layer in _mapping(spec, "layers", where, required=False).items():
        if not isinstance(layer, dict):
            raise _fail(where, f"quantization.layers.{name}", "must be a mapping")
        real(layer.get("threshold", 1.0), where, f"quantization.layers.{name}.threshold", 0, 1e6, low_open=True)
    if meta.get("imgsz") is not None:
        image_size(meta["imgsz"], where)
    check_event_input(meta.get("events"), where)


MODULE_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
MAX_GRAPH_ENTRIES = 10_000


def _module_names(names, where: str, field: str) -> list:
    if not isinstance(names, (list, dict)) or len(names) > MAX_GRAPH_ENTRIES or not all(
            isinstance(n, str) and len(n) <= 200 and MODULE_NAME.fullmatch(n) for n in names):
        raise _fail(where, field, "must name modules (dotted names of letters, digits and _)")
    return list(names)


def check_graph(graph: dict, where: str) -> None:
    """An SNN artifact's spiking graph: neuron specs by block, max-pools with their uses, accumulators and the image
    convolution, all by plain module names and every number bounded."""
    from spikeyolo.engine.layers import NEURON_KINDS, NeuronSpec

    neurons, pools = graph.get("neurons"), graph.get("pools")
    for field, value in (("graph.neurons", neurons), ("graph.pools", pools)):
        if not isinstance(value, dict):
            raise _fail(where, field, "must map module names to their settings")
    for name in _module_names(neurons, where, "graph.neurons"):
        spec, field = neurons[name], f"graph.neurons.{name}"
        if not isinstance(spec, dict) or spec.get("kind") not in NEURON_KINDS or not isinstance(
                spec.get("per_channel"), bool):
            raise _fail(where, field, f"must give kind (one of {', '.join(NEURON_KINDS)}) and per_channel")
        integer(spec.get("channels"), where, f"{field}.channels", 1, MAX_CHANNELS)
        integer(spec.get("max_spikes"), where, f"{field}.max_spikes", 1, MAX_BURST)
        real(spec.get("initial_membrane"), where, f"{field}.initial_membrane", -4.0, 4.0)
        real(spec.get("negative_slope"), where, f"{field}.negative_slope", 0.0, 0.999)
        try:
            NeuronSpec.from_dict(spec)
        except ValueError as err:
            raise _fail(where, field, str(err)) from None
    for name in _module_names(pools, where, "graph.pools"):
        integer(pools[name], where, f"graph.pools.{name}", 1, 16)
    _module_names(graph.get("accumulators"), where, "graph.accumulators")
    _module_names(graph.get("constant_input"), where, "graph.constant_input")


def check_snn_metadata(meta: dict, where: str) -> None:
    """An SNN artifact's metadata: the detector's fields plus mode, burst, membranes and the neurons' shapes."""
    names = check_names(meta.get("names"), where)
    check_model_yaml(meta.get("model_yaml"), where, len(names))
    if meta.get("mode") not in ("qcfs", "channel", "layer"):
        raise _fail(where, "mode", f"must be qcfs, channel or layer, got {meta.get('mode')!r}")
    integer(meta.get("burst", 1), where, "burst", 1, MAX_BURST)
    real(meta.get("initial_membrane"), where, "initial_membrane", -4.0, 4.0)
    if not isinstance(meta.get("snm", False), bool):
        raise _fail(where, "snm", "must be true or false")
    neurons = _mapping(meta, "neurons", where)
    for name, spec in neurons.items():
        field = f"neurons.{name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("per_channel"), bool):
            raise _fail(where, field, "must be a mapping with channels, negative_slope and per_channel")
        integer(spec.get("channels"), where, f"{field}.channels", 1, MAX_CHANNELS)
        real(spec.get("negative_slope"), where, f"{field}.negative_slope", 0.0, 0.999)
    if meta.get("format") == "spikeyolo-snn/3":
        check_graph(_mapping(meta, "graph", where), where)
    tuning = _mapping(meta, "tuning", where, required=False) if meta.get("tuning") is not None else {}
    if "timesteps" in tuning:
        integer(tuning["timesteps"], where, "tuning.timesteps", 1, MAX_TIMESTEPS)
    source = _mapping(meta, "source", where, required=False)
    if source.get("imgsz") is not None:
        image_size(source["imgsz"], f"{where} (source)")
    if source.get("levels") is not None:
        integer(source["levels"], where, "source.levels", 1, MAX_LEVELS)
    check_event_input(source.get("events"), where)
