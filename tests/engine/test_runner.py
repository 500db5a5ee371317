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
