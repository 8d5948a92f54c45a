"""Analyse one variant against the FP32 reference: the unit that is cached.

Walks the FP32 weights in graph order, reading each FP32 tensor once and every
quantized tensor matched to it once, and produces the variant's rows of the
layers, channels and histograms tables.  Only one tensor's arrays are alive at
a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .diagnostics import diagnose
from .errors import QuantLensError
from .extract import find_quantized
from .histograms import Grid, code_histogram, make_grid, value_histogram
from .match import Match, match_variant
from .metrics import channel_metrics, fp32_stats, tensor_metrics
from .model import ModelGraph
from .quant_tensor import QuantTensor, dequantize
from .roles import QUANTIZABLE_OPS
from .schema import CHANNEL_COLUMNS, HISTOGRAM_COLUMNS, LAYER_COLUMNS
from .tensors import dtype_name, tensor_numel
from .weights import FloatWeight, float_weights

__all__ = ["PairResult", "analyze_pair"]


@dataclass
class PairResult:
    """Tables of one (FP32, variant) pair; ``problems`` lists what could not be read."""

    layers: pd.DataFrame
    channels: pd.DataFrame
    histograms: pd.DataFrame
    problems: list = field(default_factory=list)


def _shape_str(shape) -> str:
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def _stored_bytes(mg: ModelGraph, qt: QuantTensor) -> int:
    t = mg.constants.get(qt.name)
    if t is None or qt.storage == "computed":
        return 0
    n = tensor_numel(t)
    if dtype_name(t.data_type) in ("int4", "uint4"):
        return (n + 1) // 2
    return n * {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4}.get(
        dtype_name(t.data_type), 1)


def _param_summary(p: np.ndarray, prefix: str) -> dict:
    p = np.asarray(p, np.float64)
    if p.size == 0:
        return {prefix: math.nan, f"{prefix}_min": math.nan, f"{prefix}_max": math.nan}
    lo, hi = float(np.min(p)), float(np.max(p))
    return {prefix: lo if p.size == 1 else math.nan, f"{prefix}_min": lo, f"{prefix}_max": hi}


class _Tables:
    def __init__(self, label: str):
        self.label = label
        self.rows: list[dict] = []
        self.channels: list[pd.DataFrame] = []
        self.hist: list[pd.DataFrame] = []

    def add_hist(self, fp32_name, qname, kind, left, right, counts, bins=None):
        n = len(counts)
        self.hist.append(pd.DataFrame({
            "variant": self.label if kind != "fp32" else "", "fp32_name": fp32_name,
            "quant_tensor": qname, "kind": kind,
            "bin": np.arange(n) if bins is None else bins,
            "left": np.asarray(left, np.float64), "right": np.asarray(right, np.float64),
            "count": np.asarray(counts, np.int64)}))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        layers = pd.DataFrame(self.rows, columns=LAYER_COLUMNS)
        for c in ("axis", "block_size", "n_scales", "levels_used", "levels_available", "order",
                  "n_elements", "fp32_nonfinite", "scale_zero", "scale_negative",
                  "scale_nonfinite", "fp32_bytes", "quant_bytes"):
            layers[c] = pd.array(layers[c], dtype="Int64")
        for c in ("per_channel", "zp_out_of_range"):
            layers[c] = pd.array(layers[c], dtype="boolean")
        ch = (pd.concat(self.channels, ignore_index=True) if self.channels
              else pd.DataFrame(columns=CHANNEL_COLUMNS))
        hi = (pd.concat(self.hist, ignore_index=True) if self.hist
              else pd.DataFrame(columns=HISTOGRAM_COLUMNS))
        return layers, ch[CHANNEL_COLUMNS], hi[HISTOGRAM_COLUMNS]


def _base_row(label: str, fw: FloatWeight | None, qt: QuantTensor | None) -> dict:
    row = dict.fromkeys(LAYER_COLUMNS)
    row["variant"] = label
    if fw is not None:
        row.update(layer=fw.consumers[0] if fw.consumers else fw.name, order=fw.order,
                   fp32_name=fw.name, role=fw.role, consumer_ops=",".join(fw.consumer_ops),
                   consumers=";".join(fw.consumers), fp32_dtype=dtype_name(fw.dtype),
                   fp32_shape=_shape_str(fw.shape), n_elements=fw.numel,
                   fp32_bytes=fw.numel * {1: 4, 10: 2, 11: 8, 16: 2}.get(fw.dtype, 4))
    if qt is not None:
        row.update(quant_tensor=qt.name, storage=qt.storage, quant_op=qt.quant_op,
                   quant_dtype=qt.dtype, granularity=qt.granularity,
                   per_channel=qt.granularity != "per_tensor", axis=qt.axis,
                   block_size=qt.block_size, n_scales=qt.n_scales, notes="; ".join(qt.notes),
                   role=row["role"] or qt.role)
        if fw is None:
            row.update(layer=qt.consumers[0] if qt.consumers else qt.name,
                       consumer_ops=",".join(qt.consumer_ops), consumers=";".join(qt.consumers),
                       fp32_shape=_shape_str(qt.shape), n_elements=qt.numel, order=10**9)
    return row


def _quant_row(tab: _Tables, variant: ModelGraph, fw: FloatWeight | None, m: Match,
               w: np.ndarray | None, grid: Grid | None) -> None:
    qt = m.qt
    row = _base_row(tab.label, fw, qt)
    row.update(status="quantized" if fw is not None else "unmatched_quant",
               match_method=m.method, quant_bytes=_stored_bytes(variant, qt))
    if fw is None:
        row["reason"] = "quantized tensor with no FP32 original found (by name, node or value)"
    if m.reshaped:
        row["notes"] = "; ".join(filter(None, [row["notes"], "FP32 shape differs; compared element-wise"]))
    d = qt.read()
    dq = dequantize(d)
    row.update(_param_summary(d.scale, "scale"))
    row.update(_param_summary(d.zero_point, "zero_point"))
    if w is None:  # no original: diagnostics of the grid only
        ref = dq
    else:
        ref = w.reshape(dq.shape) if m.reshaped else w
    met = tensor_metrics(ref, d, dq, qt.qrange)
    if w is None:
        for k in ("mse", "max_abs_err", "sqnr_db", "cosine", "clipped_frac", "fp32_min", "fp32_max",
                  "absmax_over_rms"):
            met[k] = math.nan
    row.update(met)
    row["diagnostics"] = "; ".join(diagnose(row))
    tab.rows.append(row)
    name = fw.name if fw is not None else ""
    if grid is None:
        grid = make_grid(met["dq_min"], met["dq_max"])
    bins, counts = value_histogram(dq, grid)
    left, right = grid.edges(bins)
    tab.add_hist(name, qt.name, "dq", left, right, counts, bins)
    cl, cr, cc = code_histogram(d.q, qt.qrange)
    tab.add_hist(name, qt.name, "code", cl, cr, cc)
    if w is not None:
        ch = channel_metrics(ref, d, dq)
        if ch is not None:
            df = pd.DataFrame(ch)
            df.insert(0, "quant_tensor", qt.name)
            df.insert(0, "fp32_name", name)
            df.insert(0, "variant", tab.label)
            tab.channels.append(df)


def _float_row(tab: _Tables, fw: FloatWeight, variant: ModelGraph, vweights: dict, stats: dict) -> None:
    row = _base_row(tab.label, fw, None)
    row.update(stats)
    row["match_method"] = "none"
    if fw.name in vweights:
        ops = set(fw.consumer_ops)
        if ops & QUANTIZABLE_OPS:
            row["status"] = "left_in_float"
            row["reason"] = (f"left in float: the {fw.role} of {'/'.join(sorted(ops))} "
                             "was not quantized in this variant (excluded, or not supported for this input)")
        else:
            row["status"] = "op_not_quantized"
            row["reason"] = (f"op not quantized: {'/'.join(sorted(ops))} is not an operator "
                             "the quantizer converts, so its constant stays float")
    else:
        row["status"] = "not_matched"
        row["reason"] = ("not matched: no tensor of this variant corresponds to it by name, node or "
                         "value (renamed, folded or removed when the variant was made?)")
    tab.rows.append(row)


def analyze_pair(fp32: ModelGraph, variant: ModelGraph, label: str,
                 progress: Callable[[int, int], None] | None = None) -> PairResult:
    """Tables of one variant against the FP32 reference.

    Parameters
    ----------
    fp32, variant : ModelGraph
    label : str
        The variant's name in every table.
    progress : callable, optional
        Called as ``progress(done, total)`` after each FP32 tensor.

    Returns
    -------
    PairResult
    """
    weights = float_weights(fp32)
    vweights = float_weights(variant)
    qts, problems = find_quantized(variant)
    matches = match_variant(qts, fp32, weights)
    by_fp32: dict[str, list[Match]] = {}
    for m in matches:
        by_fp32.setdefault(m.fp32_name, []).append(m)
    tab = _Tables(label)
    total = len(weights) + len(by_fp32.get(None, []))
    done = 0
    for fw in weights.values():
        try:
            w = np.asarray(fp32.array(fw.name), np.float32)
        except QuantLensError as e:
            problems.append(f"FP32 weight '{fw.name}': {e}")
            w = None
        stats = fp32_stats(w) if w is not None else {}
        grid = make_grid(stats.get("fp32_min", math.nan), stats.get("fp32_max", math.nan))
        if w is not None:
            bins, counts = value_histogram(w, grid)
            left, right = grid.edges(bins)
            tab.add_hist(fw.name, "", "fp32", left, right, counts, bins)
        ms = by_fp32.get(fw.name, [])
        if not ms:
            _float_row(tab, fw, variant, vweights, stats)
        for m in ms:
            if w is None:
                continue
            try:
                _quant_row(tab, variant, fw, m, w, grid)
            except QuantLensError as e:
                problems.append(f"'{m.qt.name}': {e}")
        done += 1
        if progress:
            progress(done, total)
    for m in by_fp32.get(None, []):
        try:
            _quant_row(tab, variant, None, m, None, None)
        except QuantLensError as e:
            problems.append(f"'{m.qt.name}': {e}")
        done += 1
        if progress:
            progress(done, total)
    layers, channels, hist = tab.frames()
    return PairResult(layers, channels, hist, problems)
