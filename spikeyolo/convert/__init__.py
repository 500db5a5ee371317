"""ANN → SNN conversion (batch-norm folding, qcfs / channel / layer normalization, IBT)."""
from spikeyolo.convert.convert import MODES, ConversionError, check_convertible, convert

__all__ = ["MODES", "ConversionError", "check_convertible", "convert"]
