"""Quantized training: QCFS activations and the trainer that uses them."""
from spikeyolo.quantize.qcfs import QCFS, qcfs
from spikeyolo.quantize.swap import quantization_spec, quantize_model

__all__ = ["QCFS", "qcfs", "quantize_model", "quantization_spec"]
