"""The cost report against counts worked out by hand, and against SpikingJelly's Lemaire estimator."""
import pytest
import torch
from torch import nn

from spikeyolo.engine import IFNeuron, SpikingDetector
from spikeyolo.engine.layers import CumulativeMaxPool
from spikeyolo.engine.runner import ImageConv
from spikeyolo.eval.cost import E_AC_PJ, E_MAC_PJ, CostMeter
from spikeyolo.eval.counting import spiking_depth
from spikeyolo.eval.energy import sram_pj_per_byte, snn_layer

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


def conv(cin: int, cout: int, k: int, weight: float, **kw) -> nn.Conv2d:
    layer = nn.Conv2d(cin, cout, k, bias=False, **kw)
    nn.init.constant_(layer.weight, weight)
    return layer


class Residual(nn.Module):
    """x + B(0.4·x), flagged ``add`` as ultralytics' Bottleneck is."""

    def __init__(self):
        super().__init__()
        self.add = True
        self.cv = conv(1, 1, 1, 0.4)
        self.act = IFNeuron(torch.tensor(1.0), 0.5)

    def forward(self, x):
        return x + self.act(self.cv(x))


def hand_snn() -> SpikingDetector:
    """image 1×4×4 → 1×1 conv (identity, computed once) → burst neuron A (θ 1, v0 ½, ≤ 2 spikes) → residual
    x + B(0.4·x) (B binary, θ 1, v0 ½) → cumulative 2×2 max-pool → 3×3 conv (1 → 2 channels, padding 1)."""
    burst = IFNeuron(torch.tensor(1.0), 0.5, max_spikes=2)
    return SpikingDetector(nn.Sequential(ImageConv(conv(1, 1, 1, 1.0)), burst, Residual(),
                                         CumulativeMaxPool(nn.MaxPool2d(2, 2)), conv(1, 2, 3, 0.1, padding=1)))


def hand_image() -> torch.Tensor:
    """Left half 1.6, right half 0.6: A emits 2,1,2,1 (left) and 1,0,1,0 (right) per pixel over 4 steps; B gets
    0.8,0.4,0.8,0.4 → 1,0,1,0 (left) and 0.4,0,0.4,0 → 0,0,1,0 (right); their sum: 3,1,3,1 and 1,0,2,0."""
    image = torch.full((1, 1, 4, 4), 0.6)
    image[..., :2] = 1.6
    return image


def measured(images: int = 3, chunk: int = 3) -> dict:
    snn = hand_snn()
    meter = CostMeter(snn)
    batch = hand_image().repeat(images, 1, 1, 1)
    snn(batch, 4, chunk=chunk)  # chunks of 3 + 1 steps: state and counts carried across
    meter.after_batch(batch)
    sites = meter.graph.sites
    report = meter.report([2, 4])
    meter.close()
    return {"sites": sites, "report": report, "meter": meter}


def steps(sites, name, key):
    return (sites[name].steps[key] / 3).tolist()  # per image


def test_events_count_every_spike_of_bursts_and_residual_sums():
    sites = measured()["sites"]
    # conv 2.cv sees A: 8 pixels × (2,1,2,1) + 8 × (1,0,1,0); a burst of 2 is 2 events, 1 input active
    assert steps(sites, "2.cv", "events") == [24, 8, 24, 8] and steps(sites, "2.cv", "active") == [16, 8, 16, 8]
    assert steps(sites, "2.cv", "synops") == [24, 8, 24, 8]  # 1×1 conv, one output channel: fan-out 1
    assert steps(sites, "1", "spikes") == [24, 8, 24, 8] and steps(sites, "2.act", "spikes") == [8, 0, 16, 0]
    # the residual merges both trains: 8 × (3,1,3,1) + 8 × (1,0,2,0)
    assert steps(sites, "2", "events") == [32, 8, 40, 8]
    # the pool's 2×2 windows are uniform: two windows of 3,1,3,1 and two of 1,0,2,0 reach the last conv
    assert steps(sites, "4", "events") == [8, 2, 10, 2] and steps(sites, "4", "active") == [4, 2, 4, 2]
    # 3×3, padding 1 on 2×2: each input reaches all 4 output positions in 2 channels: 8 synapses per spike
    assert steps(sites, "4", "synops") == [64, 16, 80, 16] and steps(sites, "4", "synops_burst") == [32, 16, 32, 16]


def test_compute_energy_and_ann_baseline_by_hand():
    report = measured()["report"]
    at4 = report["per_timestep"][4]
    assert at4["sops"] == 64 + 176  # conv 2.cv and conv 4
    # neuron updates: A 16 neurons × 4 compares + 64 resets; B 64 + 24; residual 88 events;
    # pool (16 inputs summed + 4 outputs × 4 taps compared) × 4 steps
    assert at4["other_ops"] == (64 + 64) + (64 + 24) + 88 + 128
    assert at4["energy_mj"] == pytest.approx(((240 + 432) * E_AC_PJ + 16 * E_MAC_PJ) * 1e-9)
    assert at4["firing_rate"] == pytest.approx((64 + 24) / (32 * 4))
    ann = report["baselines"]["ann_fp32"]
    assert ann["macs"] == 16 + 16 + 2 * 4 * 9  # conv 0, conv 2.cv, conv 4
    assert ann["other_ops"] == 16 + 16 + 4 * 3 + 16  # two activations, pool compares, residual adds
    assert ann["energy_mj"] == pytest.approx((104 * E_MAC_PJ + 60 * E_AC_PJ) * 1e-9)
    assert report["per_timestep"][2]["sops"] == 32 + 80


def test_lemaire_energy_of_two_layers_by_hand():
    sites = measured()["sites"]
    fifo = 1.220703125  # pJ per byte of a 4000-byte FIFO: 2.5 · 4000 / 8192
    assert sram_pj_per_byte(4000) == pytest.approx(fifo)
    last = snn_layer(sites["4"], 4, 3).lemaire_pj()
    # 22 spikes × 2 channels × 9 taps = 396 accumulates and weight reads; 2 address multiplies per spike;
    # inputs 88 B from the FIFO, weights 1584 B from 72 B, membranes 1584 B read + written in 32 B
    expected = {"ops": 39.6, "addressing": 39.6 + 44 * 3.2, "inout": 88 * fifo,
                "params": 1584 * 2.5 * 72 / 8192, "potential": 2 * 1584 * 2.5 * 32 / 8192}
    assert {k: last[k] for k in expected} == pytest.approx(expected)
    b = snn_layer(sites["2.act"], 4, 3).lemaire_pj()
    # 16 membranes read + written each step (256 B each, in 64 B); 24 spikes: 24 adds and 96 B to the FIFO
    assert b["total"] == pytest.approx(2 * 256 * 2.5 * 64 / 8192 + 2.4 + 96 * fifo)


def test_signed_spikes_count_both_signs():
    """An IBT neuron (α = 0.5, v0 = 0) fed −1.5 fires negative spikes: they reach the next convolution as events."""
    neuron = IFNeuron(torch.tensor(1.0), 0.0, negative_slope=0.5)
    snn = SpikingDetector(nn.Sequential(ImageConv(conv(1, 1, 1, -1.5)), neuron, CumulativeMaxPool(nn.MaxPool2d(2)),
                                        conv(1, 1, 1, 1.0)))
    meter = CostMeter(snn)
    outputs = []
    neuron.register_forward_hook(lambda m, i, o: outputs.append(o))
    snn(torch.ones(1, 1, 4, 4), 4, chunk=4)
    meter.after_batch(torch.ones(1, 1, 4, 4))
    spikes = outputs[0].abs().sum()  # θ = 1: the output is the signed spike count
    assert meter.graph.signed and (outputs[0] < 0).any()
    assert float(meter.graph.sites["1"].steps["spikes"].sum()) == float(spikes) > 0
    cumulative = outputs[0].view(4, 1, 1, 4, 4).cumsum(0).flatten(0, 1)  # the exact pool, recomputed here
    pooled = torch.nn.functional.max_pool2d(cumulative, 2).view(4, 1, 1, 2, 2)
    increments = pooled - torch.cat([torch.zeros_like(pooled[:1]), pooled[:-1]])
    assert float(meter.graph.sites["3"].steps["events"].sum()) == float(increments.abs().sum()) > 0
    meter.close()


def test_counts_do_not_depend_on_chunking():
    whole, chunked = measured(chunk=4)["sites"], measured(chunk=1)["sites"]
    for name, site in whole.items():
        for key, counts in site.steps.items():
            assert torch.equal(counts, chunked[name].steps[key]), (name, key)


def test_lemaire_agrees_with_spikingjelly_on_binary_if_networks():
    """SpikingJelly's own Lemaire estimator on the same binary IF network (image convolution once, then spikes)."""
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import layer as sj_layer, neuron as sj_neuron
    from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, estimate_lemaire_energy

    torch.manual_seed(0)
    convs = [nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Conv2d(6, 2, 1, bias=False)]
    for layer in convs:
        nn.init.uniform_(layer.weight, -0.2, 0.6)
    image, steps = torch.rand(1, 3, 8, 8), 4

    class Repeat(nn.Module):  # the image's convolution once, its output every step (our ImageConv)
        def forward(self, x):
            return x.unsqueeze(0).repeat(steps, 1, 1, 1, 1)

    def sj_conv(layer):
        m = sj_layer.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                            bias=layer.bias is not None, step_mode="m")
        m.load_state_dict(layer.state_dict())
        return m

    reference = nn.Sequential(convs[0], Repeat(), sj_neuron.IFNode(v_reset=None, step_mode="m"), sj_conv(convs[1]),
                              sj_neuron.IFNode(v_reset=None, step_mode="m"), sj_conv(convs[2]))
    with pytest.warns(RuntimeWarning):  # Repeat is outside the paper's scope: SpikingJelly omits it, as we do
        expected = estimate_lemaire_energy(reference, image, config=LemaireEnergyConfig(strict=False))
    ours = SpikingDetector(nn.Sequential(ImageConv(convs[0]), IFNeuron(torch.tensor(1.0), 0.0), convs[1],
                                         IFNeuron(torch.tensor(1.0), 0.0), convs[2]))
    ours.use_channels_last(False)  # SpikingJelly's layout: the same kernels, so the same spikes on every CPU
    meter = CostMeter(ours)
    ours(image, steps, chunk=steps)  # all steps in one call, as step_mode='m' folds them
    meter.after_batch(image)
    total = sum(snn_layer(site, steps, 1).lemaire_pj()["total"] for site in meter.graph.sites.values())
    meter.close()
    assert sum(float(s.steps["spikes"].sum()) for s in meter.graph.sites.values() if s.kind == "neuron") > 0
    assert total == pytest.approx(expected.total_pj, rel=1e-9)


def test_spiking_depth_is_the_longest_path():
    """The hand network: A, then the residual's B (the skip is shorter): 2. yolov8n, by hand: backbone 27 spiking
    layers to SPPF (Conv 1, Conv 2, C2f(n=1) 3-6, Conv 7, C2f(n=2) 8-13, Conv 14, C2f 15-20, Conv 21, C2f 22-25,
    SPPF 26-27), neck C2f 28-31 and 32-35, Conv 36, C2f 37-40, Conv 41, C2f 42-45, the head's two Convs 46-47."""
    assert spiking_depth(hand_snn(), torch.zeros(1, 1, 4, 4)) == 2
    from spikeyolo.convert.load import load_model, read_weights
    from tests.conftest import ROOT

    loaded = load_model(read_weights(ROOT / "weights/bccd-yolov8n-qcfs.safetensors"), torch.device("cpu"), ann=False)
    assert spiking_depth(loaded.snn, torch.zeros(1, 3, 64, 64)) == 47


def test_sizes_do_not_depend_on_the_signed_halves():
    """With neurons that take spikes back (SNM) the event graph runs positive and negative spikes as two halves of
    the batch; per-image sizes, and so the ANN baseline of the same graph, stay those of the network."""
    snn = hand_snn()
    for _, neuron in snn.neurons():
        neuron.snm = True
    meter = CostMeter(snn)
    snn(hand_image(), 4)
    meter.after_batch(hand_image())
    assert meter.graph.signed and meter.graph.sites["2"].sizes["outputs"] == 16
    assert meter.report([4])["baselines"]["ann_fp32"]["other_ops"] == 16 + 16 + 4 * 3 + 16
    meter.close()
