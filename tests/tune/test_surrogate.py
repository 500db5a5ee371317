"""Surrogate gradients: the engine's spikes forward, the smooth staircase's derivative backward, BPTT through resets."""
import pytest
import torch

from spikeyolo.engine.neuron import (if_multistep_reference, signed_memory_multistep_reference,
                                     snm_multistep_reference)
from spikeyolo.engine.surrogate import (SpikeCount, if_multistep_surrogate, signed_memory_multistep_surrogate,
                                        snm_multistep_surrogate)

pytestmark = pytest.mark.numerics


def smooth_staircase(u, low, high, a):
    """S(u) = low + Σ_{k=low+1}^{high} σ(a(u − k)), written out from its definition."""
    total = torch.full_like(u, float(low))
    for k in range(low + 1, high + 1):
        total = total + torch.sigmoid(a * (u - k))
    return total


@pytest.mark.parametrize("low,high", [(0, 1), (0, 4), (-1, 1), (-3, 4)])
def test_spike_count_backward_is_the_finite_difference_of_the_smooth_staircase(low, high):
    generator = torch.Generator().manual_seed(1)
    u = (torch.rand(64, generator=generator, dtype=torch.float64) * (high - low + 2) + low - 1).requires_grad_()
    count = torch.clamp(torch.floor(u.detach()), low, high)
    out = SpikeCount.apply(u, count, torch.full_like(u, low), torch.full_like(u, high), 4.0, max(abs(low), high))
    assert torch.equal(out, count)  # the forward is the engine's count, untouched
    out.sum().backward()
    h = 1e-6
    numeric = (smooth_staircase(u.detach() + h, low, high, 4.0) - smooth_staircase(u.detach() - h, low, high, 4.0)) / (2 * h)
    torch.testing.assert_close(u.grad, numeric, rtol=1e-6, atol=1e-8)


def _inputs(shape=(5, 2, 3, 4, 4), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) * 0.8, torch.rand(3, generator=generator) + 0.5


@pytest.mark.parametrize("burst", [1, 4])
def test_surrogate_forwards_are_the_engines_spikes(burst):
    """Same inputs, same float operations: the training forward emits exactly the engine's spikes."""
    x, theta = _inputs()
    v0 = 0.5 * theta.view(1, -1, 1, 1)
    out, v = if_multistep_surrogate(x, v0, theta, burst)
    ref, ref_v = if_multistep_reference(x, v0.expand_as(x[0]).clone(), theta, None, burst)
    assert torch.equal(out, ref) and torch.equal(v, ref_v)
    zeros = torch.zeros_like(x[0])
    out, v, m = snm_multistep_surrogate(x, v0.expand_as(x[0]).clone(), zeros, theta, burst)
    ref, ref_v, ref_m = snm_multistep_reference(x, v0.expand_as(x[0]).clone(), zeros, theta, burst)
    assert torch.equal(out, ref) and torch.equal(v, ref_v) and torch.equal(m, ref_m)
    out, s, m = signed_memory_multistep_surrogate(x, zeros, zeros, theta, 0.1, 0.5, burst)
    ref, ref_s, ref_m = signed_memory_multistep_reference(x, zeros, zeros, theta, 0.1, 0.5, burst)
    assert torch.equal(out, ref) and torch.equal(s, ref_s) and torch.equal(m, ref_m)


def test_gradient_flows_back_through_time_and_the_reset():
    """Two steps of a binary IF neuron, by hand: out = θ(c1 + c2), c_t = H(u_t − 1) with u_t = v_t/θ,
    v2 = v1 − θ·c1 + x2, so ∂out/∂x1 = S'(u1) + S'(u2)·(1 − S'(u1)) (the reset carries gradient) and
    ∂out/∂x2 = S'(u2)."""
    theta, a = torch.tensor(1.0, dtype=torch.float64), 4.0
    x = torch.tensor([[0.7], [0.6]], dtype=torch.float64, requires_grad=True)
    out, _ = if_multistep_surrogate(x, torch.tensor(0.5, dtype=torch.float64), theta, 1, a)
    out.sum().backward()

    def slope(u):
        s = torch.sigmoid(torch.tensor(a * (u - 1), dtype=torch.float64))
        return float(a * s * (1 - s))

    u1 = 0.5 + 0.7  # fires: v2 = 1.2 − 1 + 0.6
    u2 = u1 - 1 + 0.6
    assert out.flatten().tolist() == [1.0, 0.0]
    assert x.grad[0].item() == pytest.approx(slope(u1) + slope(u2) * (1 - slope(u1)), rel=1e-12)
    assert x.grad[1].item() == pytest.approx(slope(u2), rel=1e-12)


@pytest.mark.parametrize("burst", [1, 3])
def test_threshold_gradient_is_the_smooth_staircases(burst):
    """∂loss/∂θ (``tune --train-thresholds``) through u = v/θ, the output count·θ, the reset and v0 = θ/2 equals that
    of the same neuron written with a straight-through count: exact forward, the smooth staircase's derivative."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 4, 5, 5, generator=generator, dtype=torch.float64) * burst
    weights = torch.randn(3, 2, 4, 5, 5, generator=generator, dtype=torch.float64)
    theta = (torch.rand(4, generator=generator, dtype=torch.float64) + 0.5).requires_grad_()
    out, _ = if_multistep_surrogate(x, 0.5 * theta.view(1, -1, 1, 1), theta, burst)
    (out * weights).sum().backward()
    grad, theta_ref = theta.grad.clone(), theta.detach().clone().requires_grad_()
    t = theta_ref.view(1, -1, 1, 1)
    v, outputs = 0.5 * t, []
    for step in range(3):
        v = v + x[step]
        u = v / t
        exact = torch.clamp(torch.floor(u.detach()), 0, burst) if burst > 1 else (v >= t).double().detach()
        smooth = smooth_staircase(u, 0, burst, 4.0)
        count = exact + smooth - smooth.detach()
        outputs.append(count * t)
        v = v - outputs[-1]
    (torch.stack(outputs) * weights).sum().backward()
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, theta_ref.grad, rtol=1e-9, atol=1e-12)
