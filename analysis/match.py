"""Match each quantized tensor of a variant to its FP32 original.

Rules, in order (see ``docs/formats.md``): ONNX Runtime's names
(``W_quantized`` -> ``W``, ``_Transposed`` undone), then the consuming node and
input slot (quantized nodes keep or suffix the float node's name), then values
(the closest FP32 tensor of the same shape, for other producers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import QuantLensError
from .extract import OUTPUT_REF, _transpose2d
from .model import ModelGraph, node_attr
from .quant_tensor import QuantTensor, dequantize
from .weights import FloatWeight

__all__ = ["Match", "match_variant", "VALUE_MATCH_MAX_REL_MSE"]

#: Largest ``mse / mean(w^2)`` the value rule accepts (about 10 dB SQNR).
VALUE_MATCH_MAX_REL_MSE = 0.1
#: FP32 candidates compared per tensor by the value rule.
_VALUE_CANDIDATES = 32


@dataclass
class Match:
    """The FP32 original of one quantized tensor.

    ``fp32_name`` is ``None`` when no rule found one; ``reshaped`` is true when
    only the element counts agree (e.g. a ``[1, N]`` bias against ``[N]``).
    """

    qt: QuantTensor
    fp32_name: str | None
    method: str
    reshaped: bool = False


def _compatible(qt: QuantTensor, fw: FloatWeight) -> bool | None:
    """True for the same shape, False for the same size only, None otherwise."""
    if tuple(qt.shape) == tuple(fw.shape):
        return True
    if qt.numel == fw.numel:
        return False
    return None


_MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul", "MatMulNBits", "DynamicQuantizeMatMul",
               "MatMulIntegerToFloat"}


def _stored_transposed(qt: QuantTensor, fw: FloatWeight, idx: dict) -> bool:
    """A 2-D weight the quantizer stored as the transpose of the FP32 one.

    ONNX Runtime rewrites ``Gemm(transB=1)`` into a MatMul over ``Bᵀ`` (dynamic
    quantization); depending on the version the copy is named ``<B>_Transposed``
    or keeps ``<B>``.  Reversed 2-D shapes, or a square weight whose FP32 consumer
    is a ``Gemm(transB=1)`` now read by a MatMul-family op, mean transposed.
    """
    if len(qt.shape) != 2 or len(fw.shape) != 2 or qt.layout != "identity":
        return False
    if tuple(qt.shape) == tuple(reversed(fw.shape)) and qt.shape[0] != qt.shape[1]:
        return True
    if qt.shape[0] != qt.shape[1] or not (set(qt.consumer_ops) & _MATMUL_OPS):
        return False
    for nm, slot in fw.slots:
        n = idx.get(nm)
        if n is not None and n.op_type == "Gemm" and slot == 1 and node_attr(n, "transB", 0):
            return True
    return False


def _transposed_copy(qt: QuantTensor) -> QuantTensor:
    read = qt.reader
    return replace(
        qt, shape=tuple(reversed(qt.shape)), reader=lambda: _transpose2d(read()),
        axis=None if qt.axis is None else 1 - qt.axis, layout="transposed",
        notes=qt.notes + ["stored transposed (Gemm transB=1 rewritten as MatMul); reported in the FP32 layout"])


def match_variant(qts: list[QuantTensor], fp32: ModelGraph,
                  weights: dict[str, FloatWeight]) -> list[Match]:
    """Match ``qts`` (one variant) to the FP32 ``weights``.

    Returns
    -------
    list of Match
        One per quantized tensor, in the order given; ``method`` is ``name``,
        ``node``, ``value`` or ``unmatched``.
    """
    by_slot = {}
    for fw in weights.values():
        for nm, s in fw.slots:
            by_slot.setdefault((nm, s), fw.name)
    for n in fp32.nodes:  # unnamed FP32 nodes are also known by their first output
        if not n.name and n.output and n.output[0]:
            for s, inp in enumerate(n.input):
                if inp in weights:
                    by_slot.setdefault((OUTPUT_REF + n.output[0], s), inp)
    idx = {fp32.node_name(i): n for i, n in enumerate(fp32.nodes)}
    out: list[Match] = []
    pending: list[int] = []
    for qt in qts:
        m = None
        for cand, _transposed in qt.name_candidates + [(nm, False) for ref in qt.node_refs
                                                       if (nm := by_slot.get(ref))]:
            fw = weights.get(cand)
            if fw is not None and _stored_transposed(qt, fw, idx):
                qt = _transposed_copy(qt)
                break
        for cand, _transposed in qt.name_candidates:
            fw = weights.get(cand)
            if fw is not None and _compatible(qt, fw) is not None:
                m = Match(qt, cand, "name", not _compatible(qt, fw))
                break
        if m is None:
            for ref in qt.node_refs:
                nm = by_slot.get(ref)
                if nm is not None and _compatible(qt, weights[nm]) is not None:
                    m = Match(qt, nm, "node", not _compatible(qt, weights[nm]))
                    break
        if m is None:
            pending.append(len(out))
            m = Match(qt, None, "unmatched")
        out.append(m)
    if pending:
        taken = {m.fp32_name for m in out if m.fp32_name}
        for i in pending:
            out[i] = _match_by_value(out[i].qt, fp32, weights, taken)
            if out[i].fp32_name:
                taken.add(out[i].fp32_name)
    return out


def _match_by_value(qt: QuantTensor, fp32: ModelGraph, weights: dict[str, FloatWeight],
                    taken: set) -> Match:
    """Closest FP32 constant of the same size; a 2-D tensor is also compared in the
    transposed layout against FP32 weights of the reversed shape (e.g. a Gemm(transB=1)
    weight another producer stored as ``Bᵀ``), and then reported in the FP32 layout."""
    cands = [fw for fw in weights.values()
             if fw.name not in taken and _compatible(qt, fw) is not None]
    cands.sort(key=lambda fw: (not _compatible(qt, fw), abs(fw.order)))
    if not cands:
        return Match(qt, None, "unmatched")
    try:
        dq2 = dequantize(qt.read())
    except QuantLensError:
        return Match(qt, None, "unmatched")
    dq = dq2.reshape(-1).astype(np.float64)
    can_t = dq2.ndim == 2 and qt.layout == "identity"
    dq_t = dq2.T.reshape(-1).astype(np.float64) if can_t else None
    best, best_err, best_t = None, np.inf, False
    for fw in cands[:_VALUE_CANDIDATES]:
        try:
            w = np.asarray(fp32.array(fw.name), np.float64).reshape(-1)
        except QuantLensError:
            continue
        keep = np.isfinite(w)  # NaN/Inf are left out here as in every metric
        if not keep.any():
            continue
        if keep.all():
            keep = slice(None)
        wk = w[keep]
        energy = float(np.dot(wk, wk)) / max(wk.size, 1)
        layouts = [(False, dq)]
        if can_t and tuple(fw.shape) == tuple(reversed(qt.shape)):
            layouts.append((True, dq_t))
        for transposed, d in layouts:
            err = float(np.mean((wk - d[keep]) ** 2)) / energy if energy > 0 else np.inf
            if err < best_err:
                best, best_err, best_t = fw, err, transposed
    if best is None or best_err > VALUE_MATCH_MAX_REL_MSE:
        return Match(qt, None, "unmatched")
    if best_t:
        return Match(_transposed_copy(qt), best.name, "value", False)
    return Match(qt, best.name, "value", not _compatible(qt, best))
