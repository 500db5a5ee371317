"""QCFS forward and gradients against the paper's formulas, element by element."""
import math

import pytest
import torch

from spikeyolo.quantize import QCFS, qcfs, quantize_model
from spikeyolo.ultra import build_detection_model, conv_blocks
from tests.conftest import ROOT

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


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
    assert grad_z.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]  # straight-through strictly inside (0, λ)
    expected = sum((formula(z, lam, levels) - z) / lam if 0 < z < lam else (1.0 if z >= lam else 0.0) for z in zs)
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


class _FloorStraightThrough(torch.autograd.Function):
    """The paper's GradFloor: floor forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return x.floor()

    @staticmethod
    def backward(ctx, grad):
        return grad


def paper_qcfs(z: torch.Tensor, lam: torch.Tensor, levels: int, alpha: float = 0.0) -> torch.Tensor:
    """QCFS as the paper's code writes it, differentiated by autograd: x / λ, clamp, floor(x·L + ½) / L with a
    straight-through floor, times λ (signed: α·z below zero, clamped at −1)."""
    y = torch.where(z < 0, alpha * z, z) if alpha else z
    x = torch.clamp(y / lam, -1.0 if alpha else 0.0, 1.0)
    return _FloorStraightThrough.apply(x * levels + 0.5) / levels * lam


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_gradients_equal_autograd_of_the_papers_expression(alpha):
    """Both gradients, element by element, equal autograd through the paper's own composition of operations,
    window edges included (z = 0, z = λ, α·z = −λ are in the grid)."""
    lam, levels = 2.0, 4
    generator = torch.Generator().manual_seed(0)
    edges = torch.tensor([0.0, lam, -lam / alpha if alpha else -1.0, lam + 1e-3, -1e-3], dtype=torch.float64)
    z = torch.cat([torch.randn(2000, generator=generator, dtype=torch.float64) * 8, edges])
    ours_z = z.clone().requires_grad_(True)
    layer = QCFS(levels, lam, negative_slope=alpha).double()
    layer(ours_z).sum().backward()
    paper_z = z.clone().requires_grad_(True)
    paper_lam = torch.tensor(lam, dtype=torch.float64, requires_grad=True)
    paper_qcfs(paper_z, paper_lam, levels, alpha).sum().backward()
    assert torch.allclose(ours_z.grad, paper_z.grad, atol=1e-12, rtol=0)
    assert layer.threshold.grad.item() == pytest.approx(paper_lam.grad.item(), abs=1e-9)


def test_threshold_gradient_is_summed_in_float32_under_amp():
    """fp16 activations (AMP) with a GradScaler-sized loss scale: λ's gradient stays float32 and finite (an fp16
    sum of 100 000 × 1024 overflows to inf, which made GradScaler skip every step)."""
    layer = QCFS(4, 1.0)
    z = torch.full((100_000,), 3.0, dtype=torch.float16, requires_grad=True)  # above λ: ∂h/∂λ = 1 each
    out = layer(z)
    assert out.dtype == torch.float16
    (out.float().sum() * 1024.0).backward()
    assert layer.threshold.grad.dtype == torch.float32 and layer.threshold.grad.item() == 100_000 * 1024.0
    assert z.grad.dtype == torch.float16


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


def test_lambda_is_calibrated_once_from_the_public_callback():
    """--from a non-QCFS model: λ starts from one batch's activations, once; a later pipeline rebuild (ultralytics'
    OOM retry) keeps the learned λ, and the EMA copy gets the calibrated λ."""
    import copy
    from types import SimpleNamespace

    from spikeyolo.quantize.trainer import QCFSTrainer, calibrate_lambda_once

    assert "_build_train_pipeline" not in QCFSTrainer.__dict__
    model = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=3)
    quantize_model(model, 4)
    generator = torch.Generator().manual_seed(0)
    batch = {"img": torch.randint(0, 255, (2, 3, 64, 64), generator=generator, dtype=torch.uint8)}
    trainer = SimpleNamespace(calibrate_lambda=True, args=SimpleNamespace(resume=False), train_loader=[batch],
                              device=torch.device("cpu"), model=model, ema=SimpleNamespace(ema=copy.deepcopy(model)))
    calibrate_lambda_once(trainer)
    lambdas = [m.threshold.item() for m in model.modules() if isinstance(m, QCFS)]
    assert len(set(lambdas)) > 1 and all(abs(t - 3.0) > 1e-6 for t in lambdas)
    assert lambdas == [m.threshold.item() for m in trainer.ema.ema.modules() if isinstance(m, QCFS)]
    for m in model.modules():
        if isinstance(m, QCFS):
            m.threshold.data.fill_(1.25)  # "learned"
    calibrate_lambda_once(trainer)
    assert all(m.threshold.item() == 1.25 for m in model.modules() if isinstance(m, QCFS))
