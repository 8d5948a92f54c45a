"""Role of a constant from the operator that consumes it and the input slot.

A DequantizeLinear in front of a Conv weight, of a Gemm bias or of a Gather
table looks the same; only the consumer tells what the tensor *is*.
"""

from __future__ import annotations

__all__ = ["ROLES", "QUANTIZABLE_OPS", "role_of"]

#: Every role a constant can have, in the order tables sort them.
ROLES = ("weight", "bias", "gather_table", "norm_scale", "elementwise", "other")

#: Float operators that ONNX Runtime's quantizers can quantize the weights of.
QUANTIZABLE_OPS = frozenset({
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Gather", "LSTM", "Attention",
    "EmbedLayerNormalization", "GRU",
})

_WEIGHT = {
    "Conv": {1}, "ConvTranspose": {1}, "MatMul": {0, 1}, "Gemm": {0, 1}, "LSTM": {1, 2},
    "GRU": {1, 2}, "RNN": {1, 2}, "Attention": {1}, "MatMulNBits": {1}, "ConvInteger": {1},
    "MatMulInteger": {0, 1}, "QLinearConv": {3}, "QLinearMatMul": {0, 3}, "QGemm": {0, 3},
    "QAttention": {1}, "DynamicQuantizeMatMul": {1}, "MatMulIntegerToFloat": {1},
    "DynamicQuantizeLSTM": {1, 2}, "Einsum": {0, 1},
}
_BIAS = {
    "Conv": {2}, "ConvTranspose": {2}, "Gemm": {2}, "LSTM": {3}, "GRU": {3}, "RNN": {3},
    "Attention": {2}, "LayerNormalization": {2}, "BatchNormalization": {2},
    "InstanceNormalization": {2}, "SkipLayerNormalization": {3, 4}, "QLinearConv": {8},
    "QGemm": {6}, "QAttention": {2}, "MatMulNBits": {5}, "DynamicQuantizeMatMul": {4},
    "MatMulIntegerToFloat": {6},
}
_NORM = {"LayerNormalization": {1}, "BatchNormalization": {1}, "InstanceNormalization": {1},
         "SimplifiedLayerNormalization": {1}, "SkipLayerNormalization": {2},
         "SkipSimplifiedLayerNormalization": {2}, "GroupNorm": {1}}
_GATHER = {"Gather": {0}, "GatherBlockQuantized": {0}, "GatherElements": {0}, "GatherND": {0}}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min", "Concat", "Sum",
                "Mean", "PRelu", "Equal", "Less", "Greater", "QLinearAdd", "QLinearMul",
                "QLinearConcat", "QLinearWhere"}
_LINEAR_OUT = {"MatMul", "Gemm", "Conv", "ConvTranspose", "MatMulInteger", "MatMulNBits",
               "QLinearMatMul", "Einsum"}


def role_of(op_type: str, slot: int, other_input_producer: str | None = None) -> str:
    """Role of a constant read by ``op_type`` at input ``slot``.

    Parameters
    ----------
    op_type : str
        The consumer's operator type.
    slot : int
        The input index the constant feeds.
    other_input_producer : str, optional
        For ``Add``: the op producing the other operand.  A constant added to the
        output of a MatMul/Conv is that layer's bias.

    Returns
    -------
    str
        One of :data:`ROLES`.
    """
    if slot in _WEIGHT.get(op_type, ()):
        return "weight"
    if slot in _BIAS.get(op_type, ()):
        return "bias"
    if slot in _GATHER.get(op_type, ()):
        return "gather_table"
    if slot in _NORM.get(op_type, ()):
        return "norm_scale"
    if op_type == "Add" and other_input_producer in _LINEAR_OUT:
        return "bias"
    if op_type in _ELEMENTWISE:
        return "elementwise"
    return "other"
