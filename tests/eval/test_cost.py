"""The cost meter against counts worked out by hand on a two-convolution spiking network."""
import pytest
import torch
from torch import nn

from spikeyolo.engine import IFNeuron, SpikingDetector
from spikeyolo.engine.runner import ConstantInput
from spikeyolo.eval.cost import E_AC_PJ, E_MAC_PJ, CostMeter

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


def tiny_snn() -> SpikingDetector:
    """image (1×4×4) → 1×1 conv to 2 channels (channel 0 = the image, channel 1 = 0) → IF neurons
    (θ = 1, v0 = θ/2) → 3×3 conv (2 → 4 channels, padding 1)."""
    first = nn.Conv2d(1, 2, 1, bias=False)
    first.weight.data = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)
    second = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    nn.init.constant_(second.weight, 0.1)
    return SpikingDetector(nn.Sequential(ConstantInput(first), IFNeuron(torch.tensor(1.0), 0.5), second))


def test_sops_energy_and_firing_rate_by_hand():
    """Pixels of 0.6: v = 0.5 + 0.6 = 1.1 fires at t = 1 (v → 0.1), 0.7 does not, 1.3 fires at t = 3, 0.9 does not:
    16 spikes at steps 1 and 3, none from channel 1. Each spike reaches 4 output channels × 3×3 kernel taps =
    36 synapses (the meter's MACs / input elements = (4·16·2·9) / (2·16)), so per image
    SOPs(T=2) = 16·36 = 576 and SOPs(T=4) = 32·36 = 1152; the first conv's 32 MACs are computed once;
    firing rate = spikes / (32 neurons · T) = 0.25 at both T."""
    snn = tiny_snn()
    images = torch.full((3, 1, 4, 4), 0.6)
    meter = CostMeter(snn)
    snn(images, 4)
    meter.after_batch(images)
    report = meter.report([2, 4])
    meter.close()
    assert report["first_layer_macs"] == 32 and report["ann_macs"] == 32 + 4 * 16 * 2 * 9
    assert report["per_timestep"][2]["sops"] == 576 and report["per_timestep"][4]["sops"] == 1152
    assert report["per_timestep"][4]["energy_mj"] == pytest.approx((32 * E_MAC_PJ + 1152 * E_AC_PJ) * 1e-9)
    assert report["per_timestep"][2]["firing_rate"] == 0.25 and report["per_timestep"][4]["firing_rate"] == 0.25
    assert report["neuron_layers"][0]["firing_rate"] == 0.25 and report["neuron_layers"][0]["neurons"] == 32
    assert report["conv_layers"][1]["sops"] == 1152


def test_firing_rates_of_the_runner_by_hand():
    """SpikingDetector.firing_rates: 2 spikes per pixel of channel 0 over 4 steps, 32 neurons → 32 / 128."""
    snn = tiny_snn()
    snn.record(True)
    snn(torch.full((1, 1, 4, 4), 0.6), 4)
    assert snn.firing_rates() == {"1": 0.25}
