"""Our graph with SpikingJelly's IF neurons gives the same detections as with ours (the benchmark's premise)."""
import pytest
import torch

from spikeyolo.convert import convert
from tests.convert.test_convert import live_model

pytest.importorskip("spikingjelly")


def test_spikingjelly_neurons_match_ours():
    from spikeyolo.bench.spikingjelly_neurons import SpikingJellyIF, with_spikingjelly_neurons

    snn = convert(live_model("yolov8n-relu", levels=4), "qcfs")
    twin = with_spikingjelly_neurons(snn)
    assert len(twin.neurons()) == 0 and sum(isinstance(m, SpikingJellyIF) for m in twin.modules()) == len(snn.neurons())
    images = torch.rand(2, 3, 64, 64)
    ours, theirs = snn(images, 6), twin(images, 6)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    torch.testing.assert_close(twin(images, 6, chunk=2), ours, rtol=0, atol=1e-5)  # state carried over chunks


def test_spikingjelly_execution_matches_ours():
    """Run as a SpikingJelly multi-step network (image repeated over T, all T folded, NCHW): same outputs."""
    from spikeyolo.bench.spikingjelly_neurons import RepeatedInput, with_spikingjelly_execution
    from spikeyolo.engine.runner import ImageConv

    snn = convert(live_model("yolov8n-relu", levels=4), "qcfs")
    native = with_spikingjelly_execution(snn)
    assert sum(isinstance(m, RepeatedInput) for m in native.modules()) == 1
    assert not any(isinstance(m, ImageConv) for m in native.modules()) and not native.channels_last
    first_conv = []
    first = native.net.get_submodule("model.0.conv.layer")
    first.register_forward_hook(lambda m, i, o: first_conv.append(i[0].shape[0]))
    images = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(native(images, 6, chunk=6), snn(images, 6), rtol=0, atol=1e-4)
    assert first_conv == [2 * 6]  # the first convolution ran on the T repeated images, once for all steps
