"""QCFS forward and gradients against the paper's formulas, element by element."""
import math

import pytest
import torch

from spikeyolo.quantize import QCFS, qcfs, quantize_model
from spikeyolo.ultra import build_detection_model, conv_blocks
from tests.conftest import ROOT


def formula(z: float, lam: float, levels: int, alpha: float = 0.0) -> float:
    s = alpha * z if z < 0 else z
    low = -1.0 if alpha > 0 else 0.0
    return lam * min(max(math.floor(s * levels / lam + 0.5) / levels, low), 1.0)


GRID = [x / 16 for x in range(-80, 120)]


@pytest.mark.parametrize("levels,lam", [(1, 1.0), (4, 3.0), (8, 2.5), (16, 0.7)])
def test_forward_equals_formula(levels, lam):
    layer = QCFS(levels, lam).double()
    lam = layer.threshold.item()  # the float32 parameter's exact value
    out = layer(torch.tensor(GRID, dtype=torch.float64))
    expected = [formula(z, lam, levels) for z in GRID]
    assert out.tolist() == pytest.approx(expected, abs=1e-12)
    assert qcfs(torch.tensor(GRID, dtype=torch.float64), torch.tensor(lam, dtype=torch.float64), levels).tolist() == \
        pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.1, 0.25])
def test_signed_forward_equals_formula(alpha):
    layer = QCFS(4, 2.0, negative_slope=alpha)
    grid = [x * 4 for x in GRID]
    out = layer(torch.tensor(grid, dtype=torch.float64))
    assert out.tolist() == pytest.approx([formula(z, 2.0, 4, alpha) for z in grid], abs=1e-12)
    assert out.min().item() == -2.0 and out.max().item() == 2.0


def test_output_takes_levels_plus_one_values():
    layer = QCFS(5, 2.0)
    values = torch.unique(layer(torch.linspace(-3, 5, 10001)))
    assert torch.allclose(values, torch.arange(6) * 2.0 / 5)


def _grads(layer, z):
    z = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    layer = layer.double()
    layer(z).sum().backward()
    return z.grad, layer.threshold.grad


def test_gradients_match_paper():
    lam, levels = 3.0, 4
    zs = [-1.0, -0.1, 0.0, 0.4, 1.3, 2.9, 3.0, 3.1, 7.0]
    grad_z, grad_lam = _grads(QCFS(levels, lam), zs)
    assert grad_z.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]  # straight-through inside [0, λ]
    expected = sum((formula(z, lam, levels) - z) / lam if 0 <= z <= lam else (1.0 if z > lam else 0.0) for z in zs)
    assert grad_lam.item() == pytest.approx(expected, abs=1e-12)


def test_signed_gradients_match_paper():
    lam, levels, alpha = 2.0, 4, 0.1
    zs = [-30.0, -19.0, -5.0, -0.3, 0.5, 1.9, 2.5]
    grad_z, grad_lam = _grads(QCFS(levels, lam, negative_slope=alpha), zs)
    assert grad_z.tolist() == pytest.approx([0, alpha, alpha, alpha, 1, 1, 0])

    def d_lam(z):
        if z > lam:
            return 1.0
        if alpha * z < -lam:
            return -1.0
        return (formula(z, lam, levels, alpha) - (alpha * z if z < 0 else z)) / lam
    assert grad_lam.item() == pytest.approx(sum(d_lam(z) for z in zs), abs=1e-12)


def test_threshold_learns_toward_larger_inputs():
    layer = QCFS(4, 1.0)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(20):
        opt.zero_grad()
        z = torch.full((64,), 3.0)
        ((layer(z) - z) ** 2).mean().backward()
        opt.step()
    assert layer.threshold.item() > 2.5


@pytest.mark.parametrize("model,signed", [("yolov8n-relu", False), ("tiny-yolo-leaky", True)])
def test_every_layer_gets_its_own_module(model, signed):
    net = build_detection_model(ROOT / "configs" / "models" / f"{model}.yaml", nc=3)
    swapped = quantize_model(net, levels=4)
    acts = [block.act for _, block in conv_blocks(net)]
    assert swapped == len(acts) > 10
    assert len({id(a) for a in acts}) == len(acts)
    assert all(isinstance(a, QCFS) and a.signed == signed for a in acts)
    acts[0].threshold.data.fill_(7.0)
    assert acts[1].threshold.item() != 7.0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="levels"):
        QCFS(0)
    with pytest.raises(ValueError, match="negative_slope"):
        QCFS(4, negative_slope=1.5)
