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
