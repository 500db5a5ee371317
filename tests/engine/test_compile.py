"""The T-step forward as one compiled graph: zero graph breaks, one compilation for calls of the same shapes, the
same outputs as eager, state carried the same way."""
import pytest
import torch

from spikeyolo.convert import convert
from tests.convert.test_convert import live_model

pytestmark = pytest.mark.numerics


class CountingBackend:
    """A torch.compile backend that records every graph dynamo hands it and runs it as traced (the same aten ops in
    the same order as eager: outputs comparable bit for bit)."""

    def __init__(self):
        self.graphs = []

    def __call__(self, graph_module, example_inputs):
        self.graphs.append(graph_module)
        return graph_module.forward


def images(seed: int, batch: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,options", [("yolov8n-relu", {"burst": 4}), ("yolov8n-relu", {"snm": True}),
                                          ("tiny-yolo-leaky", {"burst": 2})])
def test_whole_forward_compiles_with_no_graph_break_once_for_three_calls(name, options):
    """fullgraph=True (a graph break is an error), three calls on new images of the same shapes: one graph, equal to
    eager bit for bit; a new T is a new graph (T is a shape), and so is a new batch."""
    torch._dynamo.reset()
    snn = convert(live_model(name, 4), "qcfs", **options)
    eager = [snn(images(seed), 4) for seed in range(3)]
    backend = CountingBackend()
    snn.compile(backend=backend)
    compiled = [snn(images(seed), 4) for seed in range(3)]
    assert len(backend.graphs) == 1
    assert all(torch.equal(a, b) for a, b in zip(eager, compiled))
    snn(images(0), 2)
    assert len(backend.graphs) == 2
    graph = backend.graphs[0].code
    assert ".item()" not in graph and "nonzero" not in graph  # nothing that syncs with the host or sizes by data


def test_compiled_stream_carries_the_state_as_one_call():
    """Compiled: 8 steps in one call of 4-step slices equal two streamed calls of 4 steps (the state in buffers)."""
    torch._dynamo.reset()
    snn = convert(live_model("yolov8n-relu", 4), "qcfs")
    x = images(1)
    snn(x, 4)  # the state exists: every slice below runs compiled
    backend = CountingBackend()
    snn.compile(backend=backend)
    whole = snn(x, 8, chunk=4)
    streamed = torch.cat([snn(x, 4), snn.stream(x, 4)])
    assert torch.equal(whole, streamed) and len(backend.graphs) == 1
    assert not torch.equal(streamed[4:], snn(x, 4))  # a reset call differs: the stream did carry the state


@pytest.mark.slow
def test_inductor_compiled_forward_agrees_with_eager():
    """The default backend (inductor: generated C++ on the CPU) sums in another order than oneDNN: a bound on the
    fraction of flipped detections' scores, not equality."""
    torch._dynamo.reset()
    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=4)
    x = images(2, batch=1)
    eager = snn(x, 4)
    snn.compile()
    compiled = snn(x, 4)
    flipped = ((compiled - eager).abs() > 1e-3 * eager.abs().clamp_min(1)).float().mean().item()
    assert flipped < 0.01, flipped
