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
    neuron.reset()
    neuron.timesteps = timesteps
    return neuron(z.unsqueeze(0).expand(timesteps, *z.shape).flatten(0, 1)).view(timesteps, *z.shape)


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


@pytest.mark.parametrize("memory", [False, True])
def test_reset_gives_identical_runs_and_chunks_carry_state(memory):
    torch.manual_seed(0)
    x = torch.randn(12, 2, 3, 4, 4)
    neuron = IFNeuron(torch.tensor([0.3, 0.6, 0.9]), 0.5 if memory else 0.0, negative_slope=0.2, snm=memory)
    neuron.timesteps = 12
    first = neuron(x.flatten(0, 1))
    neuron.reset()
    second = neuron(x.flatten(0, 1))
    assert torch.equal(first, second)
    neuron.reset()
    neuron.timesteps = 5
    part1 = neuron(x[:5].flatten(0, 1))
    neuron.timesteps = 7
    part2 = neuron(x[5:].flatten(0, 1))
    assert torch.equal(torch.cat([part1, part2]), first)


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
        neuron.timesteps = 6
        outputs.append(neuron(inputs))
        assert neuron.v.is_contiguous(memory_format=torch.channels_last) == (inputs is x_last)
    assert torch.equal(outputs[0], outputs[1])
    assert outputs[1].is_contiguous(memory_format=torch.channels_last)


def test_cumulative_max_pool_rate_is_max_of_rates():
    torch.manual_seed(0)
    spikes = (torch.rand(16, 1, 2, 6, 6) < 0.3).float()
    pool = CumulativeMaxPool(torch.nn.MaxPool2d(2, 2))
    pool.timesteps = 16
    out = pool(spikes.flatten(0, 1)).view(16, 1, 2, 3, 3)
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
    pool.reset()
    outputs = []
    for chunk in (x[:4], x[4:]):  # two calls of the network, state carried
        pool.timesteps = len(chunk)
        y = chunk.flatten(0, 1)
        for _ in range(3):
            y = pool(y)
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
    a, va = if_multistep(x, v, theta, neg, "torch", max_spikes=burst)
    b, vb = if_multistep_reference(x, v, theta, neg, max_spikes=burst)
    assert torch.equal(a, b) and torch.equal(va, vb)
    assert torch.equal(v, 0.5 * theta.view(1, 4, 1, 1).expand(2, 4, 5, 5))  # the caller's v is not modified
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
    """The image's convolution output [N, ...] stands for every step: the same spikes as T copies, bit for bit."""
    from spikeyolo.engine.layers import Clock

    torch.manual_seed(0)
    x = (torch.randn(2, 3, 5, 5) * 2).contiguous(memory_format=torch.channels_last)
    outputs = []
    for inputs, batch in ((x, 2), (torch.cat([x] * 6), None)):
        neuron = IFNeuron(torch.tensor([0.4, 0.7, 1.1]), 0.5, max_spikes=3)
        neuron.clock = Clock(steps=6, batch=batch)
        outputs.append(neuron(inputs))
    assert torch.equal(outputs[0], outputs[1]) and outputs[0].is_contiguous(memory_format=torch.channels_last)


def test_a_step_count_that_does_not_match_the_data_is_an_error():
    from spikeyolo.engine.layers import Clock

    neuron = IFNeuron(torch.tensor(1.0))
    neuron.clock = Clock(steps=4, batch=3)
    with pytest.raises(ValueError, match="got a batch of 8, expected T·N = 4·3"):
        neuron(torch.zeros(8, 1, 2, 2))
    pool = ReusedMaxPool(torch.nn.MaxPool2d(3, 1, 1), uses=3)
    pool.timesteps = 2
    for _ in range(3):
        pool(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="more than the 3 times"):  # a fourth use in the same chunk
        pool(torch.zeros(2, 1, 4, 4))
    pool.reset()
    pool.timesteps = 2
    pool(torch.zeros(2, 1, 4, 4))
    pool.timesteps = 2  # the next chunk, after only one of three uses
    with pytest.raises(ValueError, match="applied 1 times in a chunk, built for 3"):
        pool(torch.zeros(2, 1, 4, 4))


def test_reset_restores_every_registered_memory():
    neuron = IFNeuron(torch.tensor(1.0), snm=True)
    neuron.record, neuron.timesteps = True, 2
    neuron(torch.ones(2, 1, 2, 2))
    assert neuron.v is not None and neuron.emitted is not None and len(neuron.spikes_per_step) == 1
    first_list = neuron.spikes_per_step
    neuron.reset()
    assert neuron.v is None and neuron.emitted is None and neuron.spikes_per_step == [] \
        and neuron.spikes_per_step is not first_list
    assert set(neuron._memories) == {"v", "emitted", "spikes_per_step"}
