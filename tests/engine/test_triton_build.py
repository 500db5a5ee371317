"""The GPU path without a GPU: every Triton kernel variant compiles for Ampere and Hopper, a backend that cannot
run falls back to torch with one warning, and under autocast both backends keep float32 membranes."""
import warnings

import pytest
import torch

from spikeyolo.engine import IFNeuron
from spikeyolo.engine import neuron as neuron_module
from tests.conftest import assert_runs_in_triton_interpreter

triton = pytest.importorskip("triton")

# (SIGNED, MEMORY, MAX_SPIKES): binary and burst IF, IBT, SNM, signed neurons with memory. The kernel always
# reads float32: reduced-precision convolution outputs are cast up before it (Triton loads them as float32).
VARIANTS = [(False, False, 1), (False, False, 4), (True, False, 1), (True, False, 4), (False, True, 1),
            (False, True, 4), (True, True, 1), (True, True, 4)]
SIGNATURE = {"x_ptr": "*fp32", "v_ptr": "*fp32", "out_ptr": "*fp32", "theta_ptr": "*fp32", "neg_ptr": "*fp32",
             "emitted_ptr": "*fp32", "numel": "i32", "channels": "i32", "channel_stride": "i32", "timesteps": "i32",
             "slope": "fp32", "offset": "fp32", "SIGNED": "constexpr", "MEMORY": "constexpr",
             "MAX_SPIKES": "constexpr", "BLOCK": "constexpr"}


@pytest.mark.parametrize("arch", [80, 90])
def test_every_kernel_variant_compiles_ahead_of_time_for_cuda(arch):
    """Triton → PTX → cubin with the bundled ptxas, no GPU needed; launched as the engine launches it: without
    fused multiply-adds (which would round differently from the torch backend)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from spikeyolo.engine.triton_if import _if_kernel

    for signed, memory, max_spikes in VARIANTS:
        constants = {"SIGNED": signed, "MEMORY": memory, "MAX_SPIKES": max_spikes, "BLOCK": 1024}
        kernel = triton.compile(ASTSource(_if_kernel, SIGNATURE, constexprs=constants),
                                target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": False})
        assert len(kernel.asm["cubin"]) > 1000, constants
        assert f"sm_{arch}" in kernel.asm["ptx"] and "fma.rn" not in kernel.asm["ptx"], constants


@pytest.mark.parametrize("dtype,ptx", [("fp16", "cvt.rn.f16.f32"), ("bf16", "cvt.rn.bf16.f32")])
def test_reduced_precision_kernels_read_float32_and_store_rounded_to_nearest(dtype, ptx):
    """Reduced-precision currents in, spikes out in the same dtype: the membrane is float32 in registers and the
    spike is rounded once, to nearest (as torch's cast would round the float32 spike)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from spikeyolo.engine.triton_if import _if_kernel

    signature = {**SIGNATURE, "x_ptr": f"*{dtype}", "out_ptr": f"*{dtype}"}
    constants = {"SIGNED": False, "MEMORY": False, "MAX_SPIKES": 4, "BLOCK": 1024}
    kernel = triton.compile(ASTSource(_if_kernel, signature, constexprs=constants), target=GPUTarget("cuda", 90, 32),
                            options={"enable_fp_fusion": False})
    assert ptx in kernel.asm["ptx"] and "fma.rn" not in kernel.asm["ptx"]


def test_a_backend_that_cannot_run_falls_back_to_torch_with_one_warning(monkeypatch):
    """Triton on CPU tensors outside its interpreter cannot launch: the torch backend's result, one warning."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(neuron_module, "_fused_failed", [])
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4 * 2, 3, 5, 5, generator=generator)
    theta = torch.rand(3, generator=generator) + 0.3
    outputs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for backend in ("triton", "triton", "torch"):
            cell = IFNeuron(theta, max_spikes=2, backend=backend)
            outputs.append(cell(x.view(4, 2, 3, 5, 5)))
    fallback = [w for w in caught if "Triton neuron backend failed" in str(w.message)]
    assert len(fallback) == 1 and "torch backend instead" in str(fallback[0].message)
    assert torch.equal(outputs[0], outputs[2]) and torch.equal(outputs[1], outputs[2])


AUTOCAST_CHECK = """
import torch
from spikeyolo.convert import convert
from tests.convert.test_convert import IMAGES, live_model
for name in ("yolov8n-relu", "tiny-yolo-leaky"):
    snn = convert(live_model(name, 4), "qcfs", burst=4)
    snn.set_precision("fp16")  # (the interpreter rounds bf16 stores toward zero; GPUs to nearest: see the PTX test)
    results = []
    for backend in ("torch", "triton"):
        snn.set_backend(backend)
        out = snn(IMAGES, 2)
        states = [t for _, n in snn.neurons() for t in (n.v, n.emitted) if t is not None]
        assert out.dtype == torch.float32 and all(t.dtype == torch.float32 for t in states), (name, backend)
        results.append(out)
    assert torch.equal(results[0], results[1]), name
print("ok")
"""


def test_autocast_keeps_float32_membranes_in_both_backends():
    """fp16 convolutions (CPU autocast), Triton in its interpreter: membranes and outputs float32, equal results."""
    assert_runs_in_triton_interpreter(AUTOCAST_CHECK)


def test_set_backend_validates_its_argument():
    from spikeyolo.convert import convert
    from tests.convert.test_convert import live_model

    snn = convert(live_model("yolov8n-relu", 4), "qcfs")
    with pytest.raises(ValueError, match="unknown neuron backend 'cuda'"):
        snn.set_backend("cuda")
    assert all(n.backend == "torch" for _, n in snn.neurons())
