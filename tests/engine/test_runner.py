"""The runner's contract: a sequence of different frames is T steps of one call, equal to the frames streamed one
step each; state and geometry."""
import pytest
import torch

from spikeyolo.convert import convert
from tests.convert.test_convert import live_model

pytestmark = pytest.mark.numerics


def test_a_sequence_of_frames_equals_the_frames_streamed_one_step_each():
    """[T, N, 3, H, W] of different frames (event windows, video frames as steps) in one call equals feeding them one
    step at a time on the carried state. float64: the convolutions' sums do not depend on the batch they run in."""
    snn = convert(live_model("yolov8n-relu", 4), "qcfs").double()
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(3, 2, 3, 64, 64, dtype=torch.float64, generator=generator)
    snn.init_state(frames[0])
    whole = snn.run_steps(frames)
    streamed = torch.cat([snn(frames[0], 1)] + [snn.stream(frame, 1) for frame in frames[1:]])
    assert whole.dtype == torch.float64 and torch.equal(whole, streamed)
    still = snn(frames[0], 3)
    assert not torch.equal(still, whole)  # the frames did differ


def test_a_new_batch_or_image_size_starts_a_new_state():
    snn = convert(live_model("yolov8n-relu", 4), "qcfs")
    generator = torch.Generator().manual_seed(1)
    small, large = torch.rand(1, 3, 64, 64, generator=generator), torch.rand(2, 3, 96, 96, generator=generator)
    first = snn(small, 2)
    snn(large, 2)
    assert torch.equal(snn.stream(small, 2), first)  # a stream after another geometry starts fresh
    neuron = snn.neurons()[0][1]
    assert neuron.v.shape[0] == 1 and all(layer.state_shape is not None for layer in snn.stateful())


def test_fp32_keeps_no_copy_and_a_state_dropped_by_hand_is_allocated_again_eagerly():
    """set_precision('fp32') on a network never reduced copies nothing (a float64 network stays float64); after
    init_state the next forward starts anew, so a compiled detector does not trace the allocation."""
    from tests.engine.test_compile import CountingBackend

    snn = convert(live_model("yolov8n-relu", 4), "qcfs").double()
    snn.set_precision("fp32")
    assert snn._float32_weights is None and snn.net.model[0].conv.layer.weight.dtype == torch.float64
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    eager = snn(x, 2)
    backend = CountingBackend()
    snn.compile(backend=backend)
    snn.init_state(x)
    assert torch.equal(snn(x, 2), eager) and not backend.graphs  # the allocating slice ran eagerly
    assert torch.equal(snn(x, 2), eager) and len(backend.graphs) == 1
