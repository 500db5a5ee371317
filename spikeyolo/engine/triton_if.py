"""Fused Triton backend of the IF neuron: one launch runs all T steps of a layer.

Each program owns a block of neurons, keeps their membranes in registers and walks the time
axis, reading x[t] and writing the output once per step. Matches if_multistep_torch exactly
(same float operations in the same order, IEEE division, and no fused multiply-adds: Triton would
otherwise contract ``v - count * theta`` into one FMA on NVIDIA GPUs and round differently from torch).
Runs on CUDA, or on the CPU under TRITON_INTERPRET=1.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _if_kernel(x_ptr, v_ptr, out_ptr, theta_ptr, neg_ptr, emitted_ptr, numel, channels, channel_stride, timesteps,
               slope, offset, SIGNED: tl.constexpr, MEMORY: tl.constexpr, MAX_SPIKES: tl.constexpr,
               BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    channel = (offsets // channel_stride) % channels
    theta = tl.load(theta_ptr + channel, mask=mask, other=1.0)
    v = tl.load(v_ptr + offsets, mask=mask, other=0.0)
    if SIGNED and not MEMORY:
        neg_theta = tl.load(neg_ptr + channel, mask=mask, other=1.0)
    if MEMORY:
        emitted = tl.load(emitted_ptr + offsets, mask=mask, other=0.0)
    x_step, out_step = x_ptr + offsets, out_ptr + offsets  # advanced by numel per step: 64-bit pointer sums,
    for t in range(timesteps):                            # where t * numel could overflow 32-bit integers
        x = tl.load(x_step, mask=mask, other=0.0).to(tl.float32)  # float16/bfloat16 inputs: float32 membranes
        v = v + x
        if SIGNED and MEMORY:  # leaky layer with memory: v is the input so far, tracked by the signed quantizer
            scaled = tl.where(v < 0, v * slope, v)
            count = tl.floor(tl.math.div_rn(scaled, theta) + offset) - emitted
            out = tl.minimum(tl.maximum(count, -MAX_SPIKES), MAX_SPIKES)
            emitted = emitted + out
            out = out * theta
        elif MEMORY:  # signed neuron with memory: take back at most the spikes emitted so far
            count = tl.minimum(tl.floor(tl.math.div_rn(v, theta)), MAX_SPIKES)
            count = tl.maximum(count, -tl.minimum(emitted, MAX_SPIKES))
            out = count * theta
            emitted = emitted + count
        elif MAX_SPIKES == 1:
            out = tl.where(v >= theta, theta, 0.0)
        else:
            count = tl.minimum(tl.maximum(tl.floor(tl.math.div_rn(v, theta)), 0.0), MAX_SPIKES)
            out = count * theta
        if not (SIGNED and MEMORY):
            v = v - out
        if SIGNED and not MEMORY:
            if MAX_SPIKES == 1:
                neg_count = tl.where(v <= -neg_theta, 1.0, 0.0)
            else:
                neg_count = tl.minimum(tl.maximum(tl.floor(-tl.math.div_rn(v, neg_theta)), 0.0), MAX_SPIKES)
            out = out - neg_count * theta
            v = v + neg_count * neg_theta
        tl.store(out_step, out.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=mask)  # spikes in the input's dtype
        x_step += numel
        out_step += numel
    tl.store(v_ptr + offsets, v, mask=mask)
    if MEMORY:
        tl.store(emitted_ptr + offsets, emitted, mask=mask)


def _channel_vector(value: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    return value.to(like).expand(channels).contiguous() if value.dim() == 0 else value.to(like).contiguous()


def _state(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` itself when it is a float32 state laid out like ``like`` (a layer's buffer: updated in place), else a
    float32 copy of it (a scalar, or one step's state) in the memory layout of ``like``."""
    if value.shape == like.shape and value.stride() == like.stride() and value.dtype == torch.float32:
        return value
    return torch.empty_like(like, dtype=torch.float32).copy_(value)


def _walkable(x_seq: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(``x_seq`` with dense steps, time outermost; the distance in elements between channels of one pixel).

    NCHW steps keep a channel's pixels together (stride H·W); channels-last steps interleave channels (stride 1).
    """
    step = x_seq[0]
    dense_steps = x_seq.stride(0) == step.numel()
    if dense_steps and step.dim() == 4 and not step.is_contiguous() \
            and step.is_contiguous(memory_format=torch.channels_last):
        return x_seq, 1
    x_seq = x_seq.contiguous()
    return x_seq, x_seq[0].numel() // (x_seq.shape[1] * x_seq.shape[2])


def _launch(x_seq, v, threshold, negative_threshold, emitted, max_spikes, block, signed_memory=None):
    x_seq, channel_stride = _walkable(x_seq)
    timesteps, channels = x_seq.shape[0], x_seq.shape[2]
    numel = x_seq[0].numel()
    v = _state(v, x_seq[0])
    emitted = _state(emitted, x_seq[0]) if emitted is not None else None
    out = torch.empty_like(x_seq)
    theta = _channel_vector(threshold, channels, v)
    neg = _channel_vector(negative_threshold, channels, v) if negative_threshold is not None else theta
    grid = (triton.cdiv(numel, block),)
    slope, offset = signed_memory or (0.0, 0.0)
    _if_kernel[grid](x_seq, v, out, theta, neg, emitted if emitted is not None else v, numel, channels, channel_stride,
                     timesteps, float(slope), float(offset),
                     SIGNED=negative_threshold is not None or signed_memory is not None, MEMORY=emitted is not None,
                     MAX_SPIKES=max_spikes, BLOCK=block, enable_fp_fusion=False)
    return out, v, emitted


def if_multistep_triton(x_seq: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
                        negative_threshold: torch.Tensor | None = None, max_spikes: int = 1, block: int = 1024):
    """Fused backend: same contract as if_multistep_torch; [T, N, C, ...] inputs with dense steps of float32, float16 or bfloat16
    (membranes float32 in registers, spikes stored in the input's dtype)."""
    out, v, _ = _launch(x_seq, v, threshold, negative_threshold, None, max_spikes, block)
    return out, v


def snm_multistep_triton(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                         max_spikes: int = 1, block: int = 1024):
    """Fused signed neuron with memory: same contract as snm_multistep_torch."""
    return _launch(x_seq, v, threshold, None, emitted, max_spikes, block)


def signed_memory_multistep_triton(x_seq: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor,
                                   threshold: torch.Tensor, negative_slope: float, offset: float,
                                   max_spikes: int = 1, block: int = 1024):
    """Fused signed neuron with memory (leaky layers): same contract as signed_memory_multistep_torch."""
    return _launch(x_seq, s, threshold, None, emitted, max_spikes, block, (negative_slope, offset))
