"""Quantized training: QCFS activations and the trainer that uses them."""
from spikeyolo.quantize.qcfs import QCFS, qcfs
from spikeyolo.quantize.swap import calibrate_thresholds, quantization_spec, quantize_model

__all__ = ["QCFS", "qcfs", "calibrate_thresholds", "quantize_model", "quantization_spec"]
