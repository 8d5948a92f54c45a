"""The record of one quantized tensor, and its decoding into the FP32 layout.

:class:`QuantTensor` holds the metadata found in the graph (names, role,
granularity) and a reader that returns a :class:`Decoded`: the stored codes and
compact scale / zero-point arrays, all already in the layout of the FP32 weight
(transposed storage such as MatMulNBits or ``_Transposed`` Gemm weights undone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["QuantTensor", "Decoded", "expand_param", "dequantize", "TYPE_RANGES"]

#: Storage type -> (lowest, highest) code.
TYPE_RANGES = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "int4": (-8, 7), "uint4": (0, 15), "int32": (-(2**31), 2**31 - 1),
    "uint2": (0, 3), "int2": (-2, 1),
}


@dataclass
class Decoded:
    """Codes and parameters of one quantized tensor, in the FP32 layout.

    Attributes
    ----------
    q : np.ndarray
        Stored codes (integer dtype; float32 values for float8 types).
    scale, zero_point : np.ndarray
        Compact parameters that broadcast against ``q`` once expanded:
        shape ``()`` per tensor, ``q.ndim`` dims with one non-1 axis per channel,
        or ``shape[block_axis] = n_blocks`` for block-wise.  ``zero_point`` is int64
        (float32 for float8).
    block_axis, block_size : int or None
        Block-wise layout (``None`` otherwise).
    channel_axes : tuple of int
        Axes that index one scale (empty per tensor).
    """

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    block_axis: int | None = None
    block_size: int | None = None
    channel_axes: tuple = ()


def expand_param(p: np.ndarray, shape: tuple, block_axis: int | None,
                 block_size: int | None) -> np.ndarray:
    """Expand a compact scale or zero point so it broadcasts against ``shape``.

    Block-wise parameters are repeated ``block_size`` times along ``block_axis``
    and cut to ``shape[block_axis]`` (the last block may be partial).
    """
    if block_axis is None or p.ndim == 0:
        return p
    n = shape[block_axis]
    # never more than n copies: a huge block_size (one block) must not allocate block_size rows
    return np.repeat(p, min(block_size, max(n, 1)), axis=block_axis)[
        tuple(slice(0, n) if a == block_axis else slice(None) for a in range(p.ndim))]


def dequantize(d: Decoded) -> np.ndarray:
    """Dequantize as the runtime does: ``float32(q - z) * float32(s)``.

    ``q`` and ``z`` are widened (int32 for up to 16-bit codes, int64 for int32
    biases) before the subtraction, so unsigned codes never wrap.

    The result has the scale's type, as DequantizeLinear's output does: with a
    float16 (or bfloat16) scale the float32 product is rounded to that type.

    Returns
    -------
    np.ndarray
        float32 array of ``d.q.shape`` (holding float16 values for a float16 scale).
    """
    s = expand_param(np.asarray(d.scale, np.float32), d.q.shape, d.block_axis, d.block_size)
    z = expand_param(d.zero_point, d.q.shape, d.block_axis, d.block_size)
    if d.q.dtype.kind == "f":
        diff = d.q.astype(np.float32) - np.asarray(z, np.float32)
    else:
        wide = np.int64 if d.q.dtype.itemsize >= 4 else np.int32
        diff = (d.q.astype(wide) - np.asarray(z, wide)).astype(np.float32)
    out = np.multiply(diff, s, dtype=np.float32)
    sdt = np.asarray(d.scale).dtype
    if sdt.kind in "fV" and sdt != np.float32 and sdt.itemsize == 2:
        out = out.astype(sdt).astype(np.float32)  # the runtime returns the scale's type
    return out


@dataclass
class QuantTensor:
    """One quantized tensor of a variant, as found in the graph.

    Attributes
    ----------
    name : str
        The stored quantized tensor (for a Q->DQ pair on a float weight: that weight).
    role : str
        ``weight``, ``bias``, ``gather_table``, ``norm_scale``, ``elementwise`` or ``other``.
    quant_op : str
        Operator that carries the parameters (``DequantizeLinear``, ``QLinearConv``...).
    storage : str
        ``initializer``, ``external``, ``constant_node`` or ``computed``.
    consumers, consumer_ops : list of str
        Nodes (and their op types) that use the tensor; a shared weight lists all.
    dtype : str
        Storage type of the codes (``int8``, ``uint4``, ``float8e4m3fn``, ``int32``...).
    shape : tuple
        Shape in the FP32 layout.
    granularity : str
        ``per_tensor``, ``per_channel`` or ``blockwise``.
    axis : int or None
        Channel / block axis in the FP32 layout.
    block_size : int or None
    n_scales : int
    name_candidates : list of (str, bool)
        FP32 names to try, with ``True`` when the stored tensor is the transpose.
    node_refs : list of (str, int)
        FP32 ``(node name, input slot)`` pairs that should read the original.
    layout : str
        How storage differs from the FP32 layout (``identity``, ``transposed``,
        ``matmulnbits``, ``lstm``).
    notes : list of str
        What could not be read, or was assumed.
    """

    name: str
    role: str
    quant_op: str
    storage: str
    consumers: list
    consumer_ops: list
    dtype: str
    shape: tuple
    granularity: str
    axis: int | None
    block_size: int | None
    n_scales: int
    reader: Callable[[], Decoded] = field(repr=False, default=None)
    name_candidates: list = field(default_factory=list)
    node_refs: list = field(default_factory=list)
    layout: str = "identity"
    notes: list = field(default_factory=list)
    qrange: tuple | None = None

    def read(self) -> Decoded:
        """Decode codes and parameters (reads the payload)."""
        return self.reader()

    @property
    def numel(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))
