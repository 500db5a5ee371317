"""IF / IBT neuron maths: exact against QCFS and leaky-ReLU, backends equal, state handled."""

import pytest
import torch
import torch.nn.functional as F

from spikeyolo.engine import IFNeuron, if_multistep
from spikeyolo.engine.layers import CumulativeMaxPool, ReusedMaxPool
from spikeyolo.quantize import QCFS
from tests.conftest import assert_runs_in_triton_interpreter

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


def run_neuron(neuron: IFNeuron, z: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Feed the constant input z for T steps; returns the outputs [T, ...]."""
    neuron.clear_state()  # a new state, allocated from the sequence [T, ...]: T is its length
    return neuron(z.unsqueeze(0).expand(timesteps, *z.shape)).view(timesteps, *z.shape)


@pytest.mark.parametrize("levels,lam", [(2, 1.0), (4, 3.0), (8, 0.5), (16, 2.0)])
def test_qcfs_layer_equals_if_neuron_at_t_equal_l(levels, lam):
    # a grid off the rounding ties, where a sum over steps and a product may round a last bit apart
    z = (torch.linspace(-2 * lam, 2 * lam, 4001, dtype=torch.float64) + 1e-9 * torch.pi).view(1, 1, -1, 1)
    qcfs = QCFS(levels, lam).double()
    neuron = IFNeuron(qcfs.threshold.detach(), initial_membrane=0.5)
    rate = run_neuron(neuron, z, levels).mean(0)
    assert torch.equal(rate, qcfs(z).detach())


@pytest.mark.parametrize("levels,lam", [(4, 3.0), (8, 0.5)])
def test_qcfs_layer_equals_burst_neuron_in_one_step(levels, lam):
    """Bursts of up to L spikes of θ = λ/L: one step gives exactly the QCFS output."""
    z = (torch.linspace(-2 * lam, 2 * lam, 4001, dtype=torch.float64) + 1e-9 * torch.pi).view(1, 1, -1, 1)
    qcfs = QCFS(levels, lam).double()
    neuron = IFNeuron(qcfs.threshold.detach() / levels, initial_membrane=0.5, max_spikes=levels)
    assert torch.equal(run_neuron(neuron, z, 1)[0], qcfs(z).detach())


LEAKY = 0.1


def signed_grid(lam: float) -> torch.Tensor:
    """Inputs from −2λ/α to 2λ, off the rounding ties (float64)."""
    z = torch.linspace(-2 * lam / LEAKY, 2 * lam, 8001, dtype=torch.float64) + 1e-9 * torch.pi
    return z.view(1, 1, -1, 1)


@pytest.mark.parametrize("levels,lam", [(4, 2.0), (8, 0.5)])
def test_signed_qcfs_layer_equals_signed_burst_neuron_in_one_step(levels, lam):
    """Leaky layers: bursts of up to L spikes of θ = λ/L give the signed QCFS output in one step, on both sides
    (the negative side rounds α·z, whose first level lies at z = −θ/(2α), not at the classic IBT's −θ/α)."""
    z = signed_grid(lam)
    qcfs = QCFS(levels, lam, negative_slope=LEAKY).double()
    neuron = IFNeuron(qcfs.threshold.detach() / levels, 0.5, LEAKY, max_spikes=levels, snm=True)
    expected = qcfs(z).detach()
    assert (expected < 0).sum() > 1000 and torch.equal(run_neuron(neuron, z, 1)[0], expected)


@pytest.mark.parametrize("levels,lam", [(2, 1.0), (4, 2.0), (8, 0.5)])
def test_signed_qcfs_layer_equals_binary_signed_neuron_at_t_equal_l(levels, lam):
    """Binary ±1 spikes of θ = λ: the rate after T = L steps of a constant input is the signed QCFS output."""
    z = signed_grid(lam)
    qcfs = QCFS(levels, lam, negative_slope=LEAKY).double()
    neuron = IFNeuron(qcfs.threshold.detach(), 0.5, LEAKY, snm=True)
    out = run_neuron(neuron, z, levels)
    assert set(out.unique().tolist()) <= {-lam, 0.0, lam}
    assert torch.equal(out.mean(0), qcfs(z).detach())


def test_signed_neuron_without_memory_is_refused_above_zero():
    """A memoryless IBT neuron starting at θ/2 is one level off or ping-pongs: it is not built."""
    with pytest.raises(ValueError, match="needs memory"):
        IFNeuron(torch.tensor(1.0), initial_membrane=0.5, negative_slope=LEAKY)


def test_signed_neuron_with_memory_does_not_ping_pong():
    """A small constant negative input: the output stays ≤ 0 at every step and its rate tends to α·z."""
    neuron = IFNeuron(torch.tensor(1.0, dtype=torch.float64), 0.5, LEAKY, snm=True)
    z = torch.full((1, 1, 1, 1), -0.6, dtype=torch.float64)
    out = run_neuron(neuron, z, 200)
    assert out.max() <= 0 and abs(out.mean().item() - LEAKY * -0.6) <= 1.0 / 200


@pytest.mark.parametrize("timesteps", [8, 32, 128])
def test_ibt_rate_equals_leaky_relu_within_one_over_t(timesteps):
    alpha = 0.1
    x = torch.linspace(-9.5, 1.0, 2001, dtype=torch.float64).view(1, 1, -1, 1)
    neuron = IFNeuron(torch.tensor(1.0, dtype=torch.float64), initial_membrane=0.0, negative_slope=alpha)
    out = run_neuron(neuron, x, timesteps)
    assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}  # spikes of amplitude θ, both signs
    error = (out.mean(0) - F.leaky_relu(x, alpha)).abs().max().item()
    assert error <= 1.0 / timesteps + 1e-12


def test_per_channel_thresholds():
    theta = torch.tensor([0.5, 1.0, 4.0])
    neuron = IFNeuron(theta, initial_membrane=0.0)
    out = run_neuron(neuron, torch.ones(1, 3, 2, 2), 8)
    counts = out.ne(0).sum(0)[0, :, 0, 0].tolist()
    assert counts == [8, 8, 2] and out[:, 0, 2].max().item() == 4.0


KINDS = {"if": {}, "burst-if": {"max_spikes": 3}, "ibt": {"negative_slope": 0.2, "initial_membrane": 0.0},
         "snm": {"snm": True, "max_spikes": 2}, "signed-snm": {"snm": True, "negative_slope": 0.2}}


@pytest.mark.parametrize("kind", KINDS)
def test_t_steps_in_one_call_equal_k_calls_carrying_the_state(kind):
    """Every neuron kind: reset gives identical runs, and 12 steps in one call equal 5 + 4 + 3 steps in three calls
    (the state carried in its buffers), bit for bit; a flat [T·N, ...] input reads T from the state's batch."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(12, 2, 3, 4, 4, generator=generator)
    neuron = IFNeuron(torch.tensor([0.3, 0.6, 0.9]), **{"initial_membrane": 0.5, **KINDS[kind]})
    first = neuron(x)
    membrane = neuron.v
    neuron.reset()
    assert torch.equal(neuron(x), first) and neuron.v is membrane  # in place: no new state tensors
    neuron.reset()
    parts = [neuron(x[:5]), neuron(x[5:9].flatten(0, 1)), neuron(x[9:])]
    assert torch.equal(torch.cat(parts), first)
    assert (first < 0).any() == (kind != "if" and kind != "burst-if") and first.ne(0).any()


@pytest.mark.parametrize("snm", [False, True])
def test_channels_last_input_gives_the_same_spikes_in_its_own_layout(snm):
    """The runner feeds channels-last tensors: same spikes, bit for bit, and the state keeps that layout."""
    torch.manual_seed(0)
    x = torch.randn(6 * 2, 4, 5, 5) * 2
    x_last = x.contiguous(memory_format=torch.channels_last)
    theta = torch.rand(4) + 0.3
    outputs = []
    for inputs in (x, x_last):
        neuron = IFNeuron(theta, max_spikes=2, snm=snm)
        outputs.append(neuron(inputs.view(6, 2, 4, 5, 5)))
        assert neuron.v.is_contiguous(memory_format=torch.channels_last) == (inputs is x_last)
    assert torch.equal(outputs[0], outputs[1])
    assert outputs[1].is_contiguous(memory_format=torch.channels_last)


def test_cumulative_max_pool_rate_is_max_of_rates():
    torch.manual_seed(0)
    spikes = (torch.rand(16, 1, 2, 6, 6) < 0.3).float()
    pool = CumulativeMaxPool(torch.nn.MaxPool2d(2, 2))
    out = pool(spikes).view(16, 1, 2, 3, 3)
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # still a spike train
    expected = F.max_pool2d(spikes.cumsum(0).flatten(0, 1), 2, 2).view(16, 1, 2, 3, 3)
    assert torch.equal(out.cumsum(0), expected)  # at every step, not only the last
    naive = F.max_pool2d(spikes.flatten(0, 1), 2, 2).view(16, 1, 2, 3, 3).mean(0)
    assert (naive - expected[-1] / 16).abs().max() > 0.1  # what max-pooling raw spikes would get wrong



def test_pool_chained_in_one_forward_keeps_separate_state():
    """SPPF applies one pool module 3 times per forward: each application needs its own cumulative state."""
    torch.manual_seed(0)
    x = torch.randn(6, 2, 3, 7, 7)  # analog input, as SPPF's cv1 (no activation) gives
    pool = ReusedMaxPool(torch.nn.MaxPool2d(5, 1, 2), uses=3)
    outputs = []
    for chunk in (x[:4], x[4:]):  # two calls of the network, state carried
        y = chunk.flatten(0, 1)
        for _ in range(3):
            y = pool(y.view(len(chunk), 2, 3, 7, 7))
            outputs.append(y)
    pooled = x.cumsum(0).flatten(0, 1)
    for _ in range(3):
        pooled = F.max_pool2d(pooled, 5, 1, 2)
    got = torch.cat([outputs[2].view(4, 2, 3, 7, 7), outputs[5].view(2, 2, 3, 7, 7)]).cumsum(0)
    assert torch.allclose(got, pooled.view(6, 2, 3, 7, 7), atol=1e-5)


TRITON_CHECK = """
import torch
from spikeyolo.engine.neuron import if_multistep
torch.manual_seed(0)
for signed, burst, layout in ((False, 1, "nchw"), (True, 1, "nchw"), (False, 4, "nchw"), (True, 3, "nchw"),
                              (False, 1, "nhwc"), (True, 3, "nhwc")):
    x = torch.randn(9 * 2, 5, 7, 3) * 2
    if layout == "nhwc":  # time-folded channels-last, as the runner feeds it: the kernel walks it in place
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.view(9, 2, 5, 7, 3)
    theta = torch.rand(5) + 0.2
    v = 0.5 * theta.view(1, 5, 1, 1).expand(2, 5, 7, 3).contiguous()
    neg = theta / 0.1 if signed else None
    a, va = if_multistep(x, v.clone(), theta, neg, "torch", max_spikes=burst)
    b, vb = if_multistep(x, v.clone(), theta, neg, "triton", max_spikes=burst)
    assert torch.equal(a, b) and torch.equal(va, vb), (signed, burst, layout, (a - b).abs().max())
    assert b.stride() == x.stride(), (layout, b.stride(), x.stride())  # no hidden layout change
    assert a.ne(0).any()
from spikeyolo.engine.neuron import signed_memory_multistep

for burst, layout in ((1, "nchw"), (3, "nhwc")):  # leaky layers with memory
    x = torch.randn(9 * 2, 5, 7, 3) * 2
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.view(9, 2, 5, 7, 3)
    theta = torch.rand(5) + 0.2
    a = signed_memory_multistep(x, torch.zeros(()), torch.zeros(()), theta, 0.1, 0.5, "torch", burst)
    b = signed_memory_multistep(x, torch.zeros(()), torch.zeros(()), theta, 0.1, 0.5, "triton", burst)
    assert all(torch.equal(p, q) for p, q in zip(a, b)), (burst, layout)
    assert (a[0] < 0).any() and (a[0] > 0).any()
print("ok")
"""


def test_triton_kernel_equals_torch_in_interpreter():
    """The Triton kernel itself, run by Triton's CPU interpreter, equals the torch reference exactly."""
    assert_runs_in_triton_interpreter(TRITON_CHECK)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("signed,burst,channels_last", [(False, 1, False), (True, 1, False), (False, 4, False),
                                                        (False, 1, True), (True, 4, True)])
def test_triton_equals_torch_on_gpu(signed, burst, channels_last):
    torch.manual_seed(0)
    x = torch.randn(16 * 4, 32, 20, 20, device="cuda")
    if channels_last:  # as the runner feeds it
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.view(16, 4, 32, 20, 20)
    theta = torch.rand(32, device="cuda") + 0.2
    v = 0.5 * theta.view(1, 32, 1, 1).expand(4, 32, 20, 20).contiguous()
    neg = theta / 0.1 if signed else None
    a, va = if_multistep(x, v.clone(), theta, neg, "torch", max_spikes=burst)
    b, vb = if_multistep(x, v.clone(), theta, neg, "triton", max_spikes=burst)
    assert (a - b).abs().max().item() <= 1e-5 and (va - vb).abs().max().item() <= 1e-5
    assert b.stride() == x.stride()


@pytest.mark.parametrize("signed,burst", [(False, 1), (True, 1), (False, 4), (True, 3)])
def test_torch_backend_equals_reference(signed, burst):
    """The in-place torch backend does exactly the reference's float operations."""
    from spikeyolo.engine.neuron import if_multistep_reference

    torch.manual_seed(0)
    x = torch.randn(10, 2, 4, 5, 5) * 2
    theta = torch.rand(4) + 0.3
    v = 0.5 * theta.view(1, 4, 1, 1).expand(2, 4, 5, 5).contiguous()
    neg = theta / 0.1 if signed else None
    b, vb = if_multistep_reference(x, v, theta, neg, max_spikes=burst)
    initial = 0.5 * theta.view(1, 4, 1, 1).expand(2, 4, 5, 5)
    a, va = if_multistep(x, v, theta, neg, "torch", max_spikes=burst)
    assert va is v and not torch.equal(v, initial)  # a full state tensor (a layer's buffer) is updated in place
    assert (a < 0).any() == signed


@pytest.mark.parametrize("burst", [1, 3])
def test_signed_memory_torch_backend_equals_reference(burst):
    from spikeyolo.engine.neuron import signed_memory_multistep, signed_memory_multistep_reference

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(10, 2, 4, 5, 5, generator=generator) * 2
    theta = torch.rand(4, generator=generator) + 0.3
    zero = torch.zeros(())
    a = signed_memory_multistep(x, zero, zero, theta, LEAKY, 0.5, "torch", burst)
    b = signed_memory_multistep_reference(x, zero, zero, theta, LEAKY, 0.5, burst)
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and (a[0] < 0).any()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown neuron backend"):
        if_multistep(torch.zeros(1, 1, 1), torch.zeros(1, 1), torch.tensor(1.0), backend="cuda-magic")
    with pytest.raises(ValueError, match="unknown neuron backend 'cuda'"):
        IFNeuron(torch.tensor(1.0), backend="cuda")


def test_default_backend_is_the_fused_kernel_on_cuda_only():
    import importlib.util

    from spikeyolo.engine import default_backend

    assert default_backend("cpu") == default_backend(torch.device("cpu")) == "torch"
    fused = "triton" if importlib.util.find_spec("triton") else "torch"
    assert default_backend("0") == default_backend("cuda:1") == default_backend(torch.device("cuda", 0)) == fused


def test_a_constant_input_runs_as_a_view_and_equals_its_copies():
    """A still image's convolution output [N, ...] expanded over T (a view) gives the same spikes as T copies."""
    torch.manual_seed(0)
    x = (torch.randn(2, 3, 5, 5) * 2).contiguous(memory_format=torch.channels_last)
    outputs = []
    for inputs in (x.unsqueeze(0).expand(6, *x.shape), torch.stack([x] * 6)):
        neuron = IFNeuron(torch.tensor([0.4, 0.7, 1.1]), 0.5, max_spikes=3)
        outputs.append(neuron(inputs))
    assert torch.equal(outputs[0], outputs[1]) and outputs[0].is_contiguous(memory_format=torch.channels_last)


def test_data_that_does_not_match_the_state_is_an_error():
    neuron = IFNeuron(torch.tensor(1.0))
    with pytest.raises(RuntimeError, match="has no state"):  # a flat batch says nothing of T
        neuron(torch.zeros(8, 1, 2, 2))
    neuron(torch.zeros(4, 3, 1, 2, 2))  # state for N = 3
    with pytest.raises(ValueError, match="got a batch of 8, not T·N for its state's batch N = 3"):
        neuron(torch.zeros(8, 1, 2, 2))
    with pytest.raises(ValueError, match=r"steps of shape \[3, 1, 4, 4\], its state is \[3, 1, 2, 2\]"):
        neuron(torch.zeros(2, 3, 1, 4, 4))
    neuron.clear_state(2)  # a new batch: N known, the state allocated by the first input
    assert neuron(torch.zeros(6, 1, 4, 4)).shape == (6, 1, 4, 4) and neuron.v.shape == (2, 1, 4, 4)


def test_a_reused_pool_takes_its_pools_in_turn_and_reset_restarts_the_turn():
    pool = ReusedMaxPool(torch.nn.MaxPool2d(3, 1, 1), uses=3)
    x = torch.rand(2, 1, 1, 4, 4)
    pool(x)
    assert pool.turn == 1 and pool.pools[0].state_shape is not None and pool.pools[1].state_shape is None
    pool(x), pool(x)
    assert pool.turn == 0  # the next forward of the network starts at the first pool again
    pool(x)
    pool.reset()
    assert pool.turn == 0


def test_reset_restores_every_registered_state_in_place():
    theta = torch.tensor([0.5, 2.0])
    neuron = IFNeuron(theta, initial_membrane=0.5, snm=True)
    neuron.record = True
    neuron(torch.ones(2, 1, 2, 2, 2))
    v, emitted = neuron.v, neuron.emitted
    assert emitted.abs().sum() > 0 and len(neuron.spikes_per_step) == 1
    neuron.reset()
    assert neuron.v is v and neuron.emitted is emitted and neuron.spikes_per_step == []
    assert torch.equal(v, (0.5 * theta).view(1, 2, 1, 1).expand(1, 2, 2, 2)) and emitted.eq(0).all()
    assert set(neuron._resets) == {"v", "emitted"} and not dict(neuron.named_buffers()).keys() - {"threshold", "v",
                                                                                                   "emitted"}
    assert set(neuron.state_dict()) == {"threshold"}  # state is not a weight: never saved


def test_every_convolution_gets_a_channels_last_input_at_batch_one():
    """Layers hand on tensors in the channels-last layout (or channel slices of them): at one image and one step,
    flattening [1, 1, ...] leaves an arbitrary batch stride and cumsum allocates NCHW; C2f's and SPPF's
    concatenations then fall back to NCHW and every next convolution copies its input back
    to channels-last. 128 px: SPPF's maps are 4 × 4, not the 1 × 1 / 2 × 2 where layouts coincide."""
    from spikeyolo.convert import convert
    from tests.convert.test_convert import live_model

    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=4)
    dfl = snn.net.model[-1].dfl.conv
    inputs = []
    for module in snn.net.modules():
        if isinstance(module, torch.nn.Conv2d) and module is not dfl:
            module.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        snn(torch.rand(1, 3, 128, 128, generator=generator), 1)
        snn(torch.rand(2, 3, 128, 128, generator=generator), 3)
    nchw = [tuple(x.shape) for x in inputs if x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)]
    assert len(inputs) > 100 and not nchw, nchw
