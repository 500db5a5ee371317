"""What a converted detector does per step, counted exactly: events, synaptic operations, other operations.

A spike tensor between layers holds values (θ·n for a burst of n, sums of spike trains after a residual add),
not events, so events cannot be read off a convolution's input. ``EventGraph`` runs the detector's graph a
second time, on *spike counts*: every neuron replays |n| of its real output (its positive and negative
spikes as two halves of the batch, when a network has signed neurons), every convolution records the events
that reach it and returns zeros, and the layers in between (concat, upsample, residual add, max-pool) do what
they do. So a convolution sees, per input element, the number of spikes that arrive there: a burst of n is
n, a residual sum of two trains is the sum of their spikes, an upsampled spike arrives at every copy.

Counted per layer and step, summed over images (``Site.steps[key]`` is a [T] tensor):
- convolution fed by spikes: ``events`` (spikes arriving), ``active`` (inputs with ≥ 1 spike), ``synops``
  (one accumulate per spike per synapse it reaches, borders and stride exact: Σ events × fan-out),
  ``synops_burst`` (a burst as one low-bit multiply per synapse: Σ active × fan-out);
- neurons: ``spikes`` (both signs, a burst of n counts n);
- residual adds: ``events`` merged (one accumulate per arriving spike).
Dense per-step work (neuron updates, the max-pools' running maxima, the head's running mean) follows from
the shapes, kept in ``Site`` (per image and step).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from spikeyolo.engine.layers import Accumulate, CumulativeMaxPool, IFNeuron, ReusedMaxPool, Stateful
from spikeyolo.engine.runner import ImageConv, SpikingDetector
from spikeyolo.ultra import DFL


@dataclass
class Site:
    """One counted layer: its kind ('conv', 'analog-conv', 'neuron', 'pool', 'add', 'head'), its sizes per image
    and step, and its per-step counts summed over images."""
    name: str
    kind: str
    sizes: dict = field(default_factory=dict)
    steps: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, key: str, per_step: torch.Tensor) -> None:
        """Add a chunk's per-step counts (a [steps] tensor, left on its device) after those of this batch."""
        self._pending.setdefault(key, []).append(per_step)

    def pending(self) -> list[tuple[str, torch.Tensor]]:
        return [(key, torch.cat(chunks)) for key, chunks in self._pending.items()]

    def close_batch(self, counted: dict[str, torch.Tensor]) -> None:
        """Add this batch's counts (per key, [T] on the CPU) to the totals."""
        for key, counts in counted.items():
            old = self.steps.get(key)
            if old is None or len(old) < len(counts):
                grown = torch.zeros(len(counts), dtype=torch.float64)
                if old is not None:
                    grown[:len(old)] = old
                old = grown
            old[:len(counts)] += counts
            self.steps[key] = old
        self._pending = {}

    def __post_init__(self):
        self._pending: dict[str, list] = {}


def _per_step(x: torch.Tensor, steps: int) -> torch.Tensor:
    """[steps·N, C, H, W] or [steps·N, H, W] → the sum over everything but time, per step (any memory layout).
    Channels are summed in the tensor's own float32 (exact: integer counts far below 2²⁴), the rest in float64."""
    if x.dim() == 4:
        x = x.sum(1)
    return x.double().sum((1, 2)).view(steps, -1).sum(1)


class _ReplaySpikes(nn.Module):
    """Stands in for a neuron in the event graph: returns the spike counts its real twin emitted."""

    def __init__(self, graph: "EventGraph", name: str):
        super().__init__()
        self.graph, self.name = graph, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph.replayed.pop(self.name)


class _CountInputs(nn.Module):
    """Stands in for a convolution in the event graph: counts the spikes that reach it, returns zeros."""

    def __init__(self, graph: "EventGraph", name: str, conv: nn.Conv2d, analog: bool):
        super().__init__()
        self.graph, self.name, self.analog = graph, name, analog
        self.geometry = (conv.kernel_size, conv.stride, conv.padding, conv.dilation)  # not the conv: not a child
        self.fan = conv.out_channels // conv.groups
        self._fanout: dict[tuple, torch.Tensor] = {}

    def fanout(self, height: int, width: int, device) -> torch.Tensor:
        """Output positions each input position reaches ([H, W]; exact at borders, for any stride and dilation):
        the gradient of Σ conv(x, ones) with respect to x."""
        key = (height, width, str(device))
        if key not in self._fanout:
            kernel, stride, padding, dilation = self.geometry
            x = torch.zeros(1, 1, height, width, device=device, requires_grad=True)
            with torch.enable_grad():
                F.conv2d(x, torch.ones(1, 1, *kernel, device=device), None, stride, padding, dilation).sum().backward()
            self._fanout[key] = x.grad[0, 0].double()
        return self._fanout[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = self.graph.shapes.pop(self.name)
        if not self.analog:
            self._count(self.graph.merged(x))
        return x.new_zeros(self.graph.doubled(shape))

    def _count(self, events: torch.Tensor) -> None:
        site, steps = self.graph.sites[self.name], self.graph.steps
        reach = self.fanout(events.shape[-2], events.shape[-1], events.device) * self.fan
        arriving = events.sum(1).double()  # [T·N, H, W]: spikes at each position, all channels (float32-exact)
        active = events.ne(0).sum(1).double()
        site.add("events", _per_step(arriving, steps))
        site.add("active", _per_step(active, steps))
        site.add("synops", _per_step(arriving * reach, steps))
        site.add("synops_burst", _per_step(active * reach, steps))


class _SignedPool(nn.Module):
    """A max-pool in the event graph of a signed network: pools the signed counts (exact: its input comes from
    one neuron layer, one θ per channel), then splits them into positive and negative spikes again."""

    def __init__(self, graph: "EventGraph", pool: CumulativeMaxPool):
        super().__init__()
        self.graph, self.pool = graph, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.graph.steps
        merged = _merge(x, steps, sign=True)
        out = self.pool(merged.view(steps, -1, *merged.shape[1:]))  # [T, N, ...]: T from the shape
        return _split(out, steps)


class _Stateless(nn.Module):
    """Stands in for the head's accumulator in a twin graph: its layer only (the twin counts, it does not average)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def _split(counts: torch.Tensor, steps: int) -> torch.Tensor:
    """Signed counts [T·N, ...] → positive and negative spikes as two halves of each step: [T·2N, ...]."""
    counts = counts.view(steps, -1, *counts.shape[1:])
    return torch.stack([counts.clamp(min=0), (-counts).clamp(min=0)], 1).flatten(0, 2)


def _merge(halves: torch.Tensor, steps: int, sign: bool = False) -> torch.Tensor:
    """[T·2N, ...] → [T·N, ...]: the spikes of both signs (or, with ``sign``, their signed sum)."""
    halves = halves.view(steps, 2, -1, *halves.shape[1:])
    return (halves[:, 0] - halves[:, 1] if sign else halves.sum(1)).flatten(0, 1)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _spike_counts(neuron: IFNeuron, out: torch.Tensor) -> torch.Tensor:
    """n per element (a burst of n is n; negative for negative spikes) from a neuron's output θ·n."""
    theta = neuron.threshold.to(out.dtype)
    theta = theta.view(1, -1, *([1] * (out.dim() - 2))) if theta.dim() else theta
    return (out / theta).round()


class EventGraph:
    """Hooks a SpikingDetector and keeps a twin of its graph that runs on spike counts after every chunk
    (``SpikingDetector.chunk_observers``); ``sites`` holds the counts. ``close()`` removes every hook."""

    def __init__(self, snn: SpikingDetector):
        self.snn = snn
        self.signed = any(neuron.kind != "if" for _, neuron in snn.neurons())  # SNM takes spikes back too
        self.sites: dict[str, Site] = {}
        self.replayed: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, torch.Size] = {}
        self.steps = 1
        self.images = 0
        self.seconds = 0.0  # spent counting (inside the detector's runs: subtract it from their wall time)
        self.twin = copy.deepcopy(snn.net).float()
        self._hooks = []
        self._build(snn.net)
        snn.chunk_observers.append(self.after_chunk)

    def doubled(self, shape: torch.Size) -> torch.Size:
        return torch.Size((shape[0] * 2, *shape[1:])) if self.signed else shape

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        return _merge(x, self.steps) if self.signed else x

    def _site(self, name: str, kind: str, sizes=None) -> Site:
        """The site of layer ``name``; ``sizes()`` (per image and step) is called once, when it is first seen."""
        if name not in self.sites:
            self.sites[name] = Site(name, kind, sizes() if sizes else {})
        return self.sites[name]

    def _build(self, net: nn.Module) -> None:
        analog = {id(m.layer) for m in net.modules() if isinstance(m, ImageConv)}
        decoding = {id(m) for head in net.modules() if isinstance(head, DFL) for m in head.modules()}
        for name, module in net.named_modules():
            if isinstance(module, IFNeuron):
                self._hooks.append(module.register_forward_hook(self._on_neuron(name)))
                _set_module(self.twin, name, _ReplaySpikes(self, name))
            elif isinstance(module, nn.Conv2d) and id(module) not in decoding:
                self._hooks.append(module.register_forward_hook(self._on_conv(name, id(module) in analog)))
                _set_module(self.twin, name, _CountInputs(self, name, module, id(module) in analog))
            elif isinstance(module, CumulativeMaxPool):
                self._hooks.append(module.register_forward_hook(self._on_pool(name)))
                if self.signed:
                    _set_module(self.twin, name, _SignedPool(self, self.twin.get_submodule(name)))
            elif isinstance(module, Accumulate):
                self._hooks.append(module.register_forward_hook(self._on_head(name)))
                _set_module(self.twin, name, _Stateless(self.twin.get_submodule(name).layer))
            elif getattr(module, "add", False) is True:  # ultralytics Bottleneck: x + cv2(cv1(x))
                self._hooks.append(self.twin.get_submodule(name).register_forward_hook(self._on_add(name)))

    def _on_neuron(self, name: str):
        def hook(neuron, inputs, out):
            start = time.perf_counter()
            counts = _spike_counts(neuron, out.float())
            if name in self.replayed:
                raise RuntimeError(f"neuron layer {name} ran twice in one step chunk: the event graph cannot "
                                   "count a layer that is reused")
            steps = out.shape[0] // neuron.v.shape[0]  # T from the shapes: the output over the state's batch
            self.replayed[name] = _split(counts, steps) if self.signed else counts
            site = self._site(name, "neuron", lambda: {"neurons": out[0].numel(), "spec": neuron.spec})
            site.add("spikes", _per_step(counts.abs(), steps))
            self.seconds += time.perf_counter() - start
        return hook

    def _on_conv(self, name: str, analog: bool):
        def hook(conv, inputs, out):
            self.shapes[name] = out.shape
            taps = conv.kernel_size[0] * conv.kernel_size[1]
            self._site(name, "analog-conv" if analog else "conv", lambda: {
                "inputs": inputs[0][0].numel(), "outputs": out[0].numel(), "taps": taps,
                "macs": out[0].numel() * conv.in_channels // conv.groups * taps, "weights": conv.weight.numel(),
                "out_channels": conv.out_channels, "bias": conv.bias is not None,
                "fan": conv.out_channels // conv.groups, "stride_taps": _stride_taps(conv)})
        return hook

    def _on_pool(self, name: str):
        def hook(pool, inputs, out):
            k = pool.pool.kernel_size
            taps = k * k if isinstance(k, int) else k[0] * k[1]
            self._site(name, "pool", lambda: {"inputs": inputs[0][0].numel(), "outputs": out[0].numel(), "taps": taps})
        return hook

    def _on_head(self, name: str):
        def hook(head, inputs, out):
            self._site(name, "head", lambda: {"outputs": out[0].numel()})
        return hook

    def _on_add(self, name: str):
        def hook(block, inputs, out):
            site = self._site(name, "add", lambda: {"outputs": out[0].numel()})  # one image, one step
            site.add("events", _per_step(self.merged(out), self.steps))
        return hook

    @torch.no_grad()
    def after_chunk(self, images: torch.Tensor, steps: int, first: bool) -> None:
        """Run the twin on the spike counts the chunk just emitted (its state carried like the real one's)."""
        start = time.perf_counter()
        self.steps = steps
        _start_chunk(self.twin, first, images.shape[0])
        self.twin(images.float().contiguous())
        if self.replayed or self.shapes:
            left = ", ".join(sorted({*self.replayed, *self.shapes})[:3])
            self.replayed, self.shapes = {}, {}
            raise RuntimeError(f"the event graph did not consume {left}: it no longer mirrors the detector")
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        self.seconds += time.perf_counter() - start

    def after_batch(self, images: torch.Tensor) -> None:
        """Bring the batch's counts to the CPU in one transfer (one device sync per batch, not per layer)."""
        self.images += images.shape[0]
        pending = [(site, key, counts) for site in self.sites.values() for key, counts in site.pending()]
        if not pending:
            return
        host = torch.cat([counts for _, _, counts in pending]).cpu().split([len(c) for _, _, c in pending])
        for site in self.sites.values():
            site.close_batch({key: counts for (owner, key, _), counts in zip(pending, host) if owner is site})

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self.after_chunk in self.snn.chunk_observers:
            self.snn.chunk_observers.remove(self.after_chunk)


def _start_chunk(twin: nn.Module, first: bool, batch: int) -> None:
    """A twin graph's next chunk: on the first chunk of a run, a new state for ``batch`` images (its layers read T
    from their inputs' shapes, as the detector's do); later chunks carry it."""
    if first:
        for module in twin.modules():
            if isinstance(module, Stateful):
                module.clear_state(batch)
            elif isinstance(module, ReusedMaxPool):
                module.reset()


def _stride_taps(conv: nn.Conv2d) -> int:
    """Π ceil(k / stride): SpikingJelly's (Lemaire's) synaptic operations per input spike and output channel."""
    return -(-conv.kernel_size[0] // conv.stride[0]) * -(-conv.kernel_size[1] // conv.stride[1])


DEPTH_BASE = 1000.0  # depth d travels as BASE**d: a sum of fewer than BASE such terms keeps floor(log) = max d


class _DepthOf(nn.Module):
    """In the depth graph: a neuron adds one spiking layer (and notes its depth in ``reached``); a convolution
    passes its deepest input on; the image's convolution starts at depth 0."""

    def __init__(self, out_shapes: list | None = None, reached: list | None = None, image: bool = False):
        super().__init__()
        self.out_shapes, self.reached, self.image = out_shapes, reached, image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image:
            return x.new_ones(self.out_shapes.pop(0))
        deepest = math.floor(math.log(float(x.max())) / math.log(DEPTH_BASE) + 1e-9)
        if self.reached is not None:
            self.reached.append(deepest + 1)
            return torch.full_like(x, DEPTH_BASE ** (deepest + 1))
        return x.new_full(self.out_shapes.pop(0), DEPTH_BASE ** deepest)


@torch.no_grad()
def spiking_depth(snn: SpikingDetector, image: torch.Tensor) -> int:
    """Spiking layers on the longest path from the image to the head: the steps a spike needs to cross the
    network when every layer takes one step (a pipelined chip), the latency the folded simulation hides.
    Structural (the image's values do not matter); found by running the graph once on depths (residual adds sum
    them: BASE**d keeps the largest)."""
    shapes: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.setdefault(name, []).append(o.shape))
             for name, m in snn.net.named_modules() if isinstance(m, nn.Conv2d)]
    observers, snn.chunk_observers = snn.chunk_observers, []
    try:
        with snn.eager():  # the hooks must see every convolution
            snn(image[:1], 1)
    finally:
        snn.chunk_observers = observers
        for hook in hooks:
            hook.remove()
    twin, reached = copy.deepcopy(snn.net).double(), []
    analog = {id(m.layer) for m in snn.net.modules() if isinstance(m, ImageConv)}
    for name, module in snn.net.named_modules():
        if isinstance(module, IFNeuron):
            _set_module(twin, name, _DepthOf(reached=reached))
        elif isinstance(module, nn.Conv2d) and name in shapes:
            _set_module(twin, name, _DepthOf(shapes[name], image=id(module) in analog))
    _start_chunk(twin, True, 1)
    twin(image[:1].double())
    return max(reached, default=0)
