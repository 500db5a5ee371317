"""Signed neuron with memory (SNM): its defining property, backends equal, whole-model use."""
import pytest
import torch

from spikeyolo.engine import IFNeuron
from spikeyolo.engine.neuron import snm_multistep, snm_multistep_reference
from tests.conftest import assert_runs_in_triton_interpreter

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


def random_case(seed: int = 0, timesteps: int = 12):
    torch.manual_seed(seed)
    x = torch.randn(timesteps, 2, 4, 5, 5) * 1.5
    theta = torch.rand(4) + 0.3
    v = 0.5 * theta.view(1, 4, 1, 1).expand(2, 4, 5, 5).contiguous()
    return x, v, theta


@pytest.mark.parametrize("burst", [1000, 3])
def test_running_output_is_the_floor_of_the_running_input(burst):
    """With room for the spikes (large D), the neuron's running output is θ·max(floor(V/θ), 0), V = v0 + Σx."""
    x, v, theta = random_case()
    out, _, emitted = snm_multistep(x, v.clone(), torch.zeros_like(v), theta, max_spikes=burst)
    th = theta.view(1, 4, 1, 1)
    spikes = (out.cumsum(0) / th).round()
    assert spikes.min() >= 0  # never takes back more than it emitted
    assert torch.equal(spikes[-1], emitted)
    if burst == 1000:
        ideal = torch.floor((v + x.cumsum(0)) / th).clamp(min=0)
        assert torch.equal(spikes, ideal)
    else:
        assert out.abs().div(th).round().max() <= burst and (out < 0).any()


def test_negative_spike_takes_back_an_early_one():
    """Input θ then −θ: IF keeps its spike (rate ½ for a net input 0), the SNM takes it back."""
    theta = torch.tensor(1.0)
    x = torch.tensor([1.0, -1.0, 0.0, 0.0]).view(4, 1, 1, 1, 1)
    snm = IFNeuron(theta, initial_membrane=0.5, snm=True)
    plain = IFNeuron(theta, initial_membrane=0.5)
    assert snm(x).flatten().tolist() == [1.0, -1.0, 0.0, 0.0]
    assert plain(x).flatten().tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("burst", [1, 4])
def test_torch_backend_equals_reference(burst):
    x, v, theta = random_case(1)
    emitted = torch.zeros_like(v)
    b = snm_multistep_reference(x, v, emitted, theta, burst)
    a = snm_multistep(x, v, emitted, theta, "torch", burst)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert a[1] is v and a[2] is emitted  # a full state (a layer's buffers) is updated in place


def test_chunks_carry_the_memory():
    neuron = IFNeuron(torch.rand(4) + 0.3, snm=True)
    x = torch.randn(10, 2, 4, 3, 3)
    whole = neuron(x)
    neuron.reset()
    halves = torch.cat([neuron(x[:5]), neuron(x[5:])])
    assert torch.equal(whole, halves)


def test_snm_on_a_leaky_layer_is_the_signed_neuron_with_memory():
    assert IFNeuron(torch.tensor(1.0), negative_slope=0.1, snm=True).kind == "signed-snm"
    assert IFNeuron(torch.tensor(1.0), initial_membrane=0.0, negative_slope=0.1).kind == "ibt"


TRITON_CHECK = """
import torch
from spikeyolo.engine.neuron import snm_multistep

torch.manual_seed(0)
for burst in (1, 3):
    x = torch.randn(9, 2, 5, 7, 3) * 2
    theta = torch.rand(5) + 0.2
    v = 0.5 * theta.view(1, 5, 1, 1).expand(2, 5, 7, 3).contiguous()
    m = torch.zeros_like(v)
    a = snm_multistep(x, v.clone(), m.clone(), theta, "torch", burst)
    b = snm_multistep(x, v.clone(), m.clone(), theta, "triton", burst)
    assert all(torch.equal(p, q) for p, q in zip(a, b)), burst
    assert (a[0] < 0).any()
print("ok")
"""


def test_triton_kernel_equals_torch_in_interpreter():
    """The Triton kernel itself, run by Triton's CPU interpreter, equals the torch reference exactly."""
    assert_runs_in_triton_interpreter(TRITON_CHECK)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_equals_torch_on_gpu():
    torch.manual_seed(0)
    x = torch.randn(16, 4, 32, 20, 20, device="cuda")
    theta = torch.rand(32, device="cuda") + 0.2
    v = 0.5 * theta.view(1, 32, 1, 1).expand(4, 32, 20, 20).contiguous()
    a = snm_multistep(x, v, torch.zeros_like(v), theta, "torch")
    b = snm_multistep(x, v, torch.zeros_like(v), theta, "triton")
    assert all((p - q).abs().max().item() <= 1e-5 for p, q in zip(a, b))
