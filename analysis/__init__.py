"""QuantLens analysis: read quantized ONNX models exactly and measure what
quantization did to every weight.  Pure Python; never imports dash."""

from .api import Analysis, analyze, variant_labels
from .errors import ModelLoadError, QuantLensError, TensorReadError, UnsafeModelError
from .extract import find_quantized
from .model import ModelGraph, load_model, parse_model_bytes
from .pair import analyze_pair
from .quant_tensor import Decoded, QuantTensor, dequantize
from .schema import CHANNEL_COLUMNS, HISTOGRAM_COLUMNS, LAYER_COLUMNS, STATUSES

__all__ = [
    "Analysis", "analyze", "variant_labels", "analyze_pair", "load_model", "parse_model_bytes",
    "ModelGraph", "find_quantized", "QuantTensor", "Decoded", "dequantize",
    "QuantLensError", "ModelLoadError", "TensorReadError", "UnsafeModelError",
    "LAYER_COLUMNS", "CHANNEL_COLUMNS", "HISTOGRAM_COLUMNS", "STATUSES",
]
