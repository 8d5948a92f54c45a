"""Analyse one variant against the FP32 reference: the unit that is cached.

Walks the FP32 weights in graph order, reading each FP32 tensor once and every
quantized tensor matched to it once, and produces the variant's rows of the
layers, channels and histograms tables.  Only the tensors being measured, and
the FP32 weights read ahead of them (:func:`read_ahead_budget`), are alive at a
time.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

from .diagnostics import diagnose
from .errors import QuantLensError
from .extract import find_quantized
from .histograms import MAX_EXTRA_BINS, Grid, make_grid
from .kernels import HIST_SIZE, fp32_hist, frozen
from .metrics import fp32_stats
from .match import Match, match_variant
from .model import ModelGraph
from .quant_tensor import QuantTensor, dequantize
from .readahead import ReadAhead
from .roles import QUANTIZABLE_OPS
from .tensor_stats import measure
from .schema import CHANNEL_COLUMNS, HISTOGRAM_COLUMNS, LAYER_COLUMNS
from .tensors import dtype_name, prefetch, tensor_numel
from .weights import FloatWeight, float_weights

__all__ = ["PairResult", "analyze_pair", "read_ahead_budget"]


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
        self.hist.append((self.label if kind != "fp32" else "", fp32_name, qname, kind,
                          np.arange(n) if bins is None else np.asarray(bins),
                          np.asarray(left, np.float64), np.asarray(right, np.float64),
                          np.asarray(counts, np.int64)))

    def merge(self, other: "_Tables") -> None:
        """Append another part's rows, histograms and channels (in order)."""
        self.rows.extend(other.rows)
        self.hist.extend(other.hist)
        self.channels.extend(other.channels)

    def add_channels(self, fp32_name, qname, ch: dict):
        self.channels.append((fp32_name, qname, ch))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        layers = pd.DataFrame(self.rows, columns=LAYER_COLUMNS)
        for c in ("axis", "block_size", "n_scales", "levels_used", "levels_available", "order",
                  "n_elements", "fp32_nonfinite", "scale_zero", "scale_negative",
                  "scale_nonfinite", "fp32_bytes", "quant_bytes"):
            layers[c] = pd.array(layers[c], dtype="Int64")
        for c in ("per_channel", "zp_out_of_range"):
            layers[c] = pd.array(layers[c], dtype="boolean")
        return layers, self._channel_frame(), self._hist_frame()

    def _hist_frame(self) -> pd.DataFrame:
        if not self.hist:
            return pd.DataFrame(columns=HISTOGRAM_COLUMNS)
        sizes = [len(h[7]) for h in self.hist]
        rep = lambda i: _repeat_text([h[i] for h in self.hist], sizes)  # noqa: E731
        return pd.DataFrame({
            "variant": rep(0), "fp32_name": rep(1), "quant_tensor": rep(2), "kind": rep(3),
            "bin": np.concatenate([h[4] for h in self.hist]).astype(np.int64),
            "left": np.concatenate([h[5] for h in self.hist]),
            "right": np.concatenate([h[6] for h in self.hist]),
            "count": np.concatenate([h[7] for h in self.hist])}, copy=False)[HISTOGRAM_COLUMNS]

    def _channel_frame(self) -> pd.DataFrame:
        if not self.channels:
            return pd.DataFrame(columns=CHANNEL_COLUMNS)
        sizes = [len(c[2]["channel"]) for c in self.channels]
        data = {"variant": _repeat_text([self.label] * len(sizes), sizes),
                "fp32_name": _repeat_text([c[0] for c in self.channels], sizes),
                "quant_tensor": _repeat_text([c[1] for c in self.channels], sizes)}
        for k in CHANNEL_COLUMNS[3:]:
            data[k] = np.concatenate([np.asarray(c[2][k]) for c in self.channels])
        return pd.DataFrame(data, copy=False)[CHANNEL_COLUMNS]


def _repeat_text(values: list, sizes: list[int]) -> pd.Categorical:
    """``values[i]`` repeated ``sizes[i]`` times, as a Categorical built from codes: no
    per-row string object, and the cache writes it without factorizing the rows again."""
    cats, inv = np.unique(np.array([str(v) for v in values], dtype=object), return_inverse=True)
    codes = np.repeat(inv.reshape(-1).astype(np.int32), sizes)
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(cats, dtype=object)),
                                     validate=False)


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
               w: np.ndarray | None, grid: Grid | None, known: dict | None = None,
               fp_hist: np.ndarray | None = None) -> bool:
    """Append the row, histograms and channels of one quantized tensor.

    Returns True when the FP32 histogram was counted into ``fp_hist`` on the way."""
    qt = m.qt
    row = _base_row(tab.label, fw, qt)
    row.update(status="quantized" if fw is not None else "unmatched_quant",
               match_method=m.method, quant_bytes=_stored_bytes(variant, qt))
    if fw is None:
        row["reason"] = "quantized tensor with no FP32 original found (by name, node or value)"
    if m.reshaped:
        row["notes"] = "; ".join(filter(None, [row["notes"], "FP32 shape differs; compared element-wise"]))
    d = qt.read()
    row.update(_param_summary(d.scale, "scale"))
    row.update(_param_summary(d.zero_point, "zero_point"))
    ref = None if w is None else (w.reshape(d.q.shape) if m.reshaped else w)
    if grid is None:  # no FP32 original: bin the dequantized values on their own range
        dq = dequantize(d)
        fin = dq[np.isfinite(dq)]  # NaN/Inf (bad scales) stay out of the grid, silently
        grid = make_grid(float(fin.min()) if fin.size else math.nan,
                         float(fin.max()) if fin.size else math.nan)
    st = measure(ref if w is not None else dequantize(d), d, qt.qrange, grid,
                 known if w is not None else None, fp_hist if w is not None else None)
    met = st.metrics
    if w is None:
        for k in ("mse", "max_abs_err", "sqnr_db", "cosine", "clipped_frac", "fp32_min", "fp32_max",
                  "absmax_over_rms"):
            met[k] = math.nan
    row.update(met)
    row["diagnostics"] = "; ".join(diagnose(row))
    tab.rows.append(row)
    name = fw.name if fw is not None else ""
    left, right = grid.edges(st.dq_bins)
    tab.add_hist(name, qt.name, "dq", left, right, st.dq_counts, st.dq_bins)
    used = np.flatnonzero(st.code_counts)  # from the lowest to the highest code used
    a, b = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
    tab.add_hist(name, qt.name, "code", st.code_left[a:b], st.code_right[a:b], st.code_counts[a:b])
    if w is not None and st.channels is not None:
        tab.add_channels(name, qt.name, st.channels)
    return st.fp_done


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


def _unreadable_row(tab: _Tables, fw: FloatWeight, qt: QuantTensor, stats: dict, why: str) -> None:
    """A weight matched to a quantized tensor that could not be measured: shown, with why
    (the same message is in ``problems``), never dropped from the tables."""
    row = _base_row(tab.label, fw, qt)
    row.update(stats)
    row.update(status="unreadable", match_method="none", reason=why)
    tab.rows.append(row)


def _fp32_range(w: np.ndarray | None) -> tuple[dict, Grid]:
    """FP32 finite range and NaN/Inf count (NumPy's SIMD min/max; a mask only if needed)."""
    if w is None:
        return {}, make_grid(math.nan, math.nan)
    stats = fp32_stats(w)
    return stats, make_grid(stats["fp32_min"], stats["fp32_max"])


def _add_fp32_hist(tab: _Tables, name: str, grid: Grid, hist: np.ndarray) -> None:
    nz = np.nonzero(hist)[0]
    if nz.size == 0:
        return
    bins = np.arange(nz[0], nz[-1] + 1) - MAX_EXTRA_BINS
    left, right = grid.edges(bins)
    tab.add_hist(name, "", "fp32", left, right, hist[nz[0]:nz[-1] + 1], bins)


def analyze_pair(fp32: ModelGraph, variant: ModelGraph | Callable[[], ModelGraph], label: str,
                 progress: Callable[[int, int], None] | None = None) -> PairResult:
    """Tables of one variant against the FP32 reference.

    Parameters
    ----------
    fp32 : ModelGraph
    variant : ModelGraph or callable
        The variant, or a function that loads it: it is then loaded while the FP32
        weights are already being read.
    label : str
        The variant's name in every table.
    progress : callable, optional
        Called as ``progress(done, total)`` after each FP32 tensor.

    Returns
    -------
    PairResult
    """
    weights = float_weights(fp32)
    fws = list(weights.values())
    nbytes = lambda fw: fw.numel * 4  # noqa: E731 - float32, as the reader maps it
    workers = _threads()  # read once: the budget is sized for the pool that takes the tensors
    # One thread reads the FP32 weights in file order from now on (see analysis.readahead).
    with ReadAhead(fws, partial(_read_weight, fp32), nbytes,
                   read_ahead_budget([nbytes(fw) for fw in fws], workers)) as ra:
        return _measure_pair(fp32, variant() if callable(variant) else variant, label, progress,
                             weights, fws, ra, workers)


def _read_weight(fp32: ModelGraph, fw: FloatWeight) -> tuple:
    """Map one FP32 weight and take its range: ``(w, error, stats, grid)``."""
    try:
        w = np.asarray(fp32.array(fw.name), np.float32)
    except QuantLensError as e:
        return None, str(e), *_fp32_range(None)
    prefetch(w)  # the whole tensor in flight, not one fault's read-ahead window
    with np.errstate(all="ignore"):
        return w, None, *_fp32_range(w)


def _measure_pair(fp32: ModelGraph, variant: ModelGraph, label: str, progress, weights: dict,
                  fws: list[FloatWeight], ra: ReadAhead, workers: int) -> PairResult:
    """Match the variant to the FP32 weights and measure every pair the reader hands over
    (``fws``: the weights in the reader's order) on ``workers`` threads."""
    vweights = float_weights(variant)
    qts, unread = find_quantized(variant)
    problems = [*(f"FP32 model: {w}" for w in fp32.warnings), *variant.warnings, *unread]
    if not weights:
        problems.append("the FP32 model has no float weights read by any node: nothing to compare "
                        "with (was a quantized model given as the FP32 reference?)")
    if not qts and not unread:
        problems.append("no quantized tensors found: this variant looks like a float model")
    with np.errstate(all="ignore"):  # NaN/Inf/zero scales are reported in columns, not as warnings
        matches = match_variant(qts, fp32, weights)
    by_fp32: dict[str, list[Match]] = {}
    for m in matches:
        by_fp32.setdefault(m.fp32_name, []).append(m)
    tab = _Tables(label)
    total = len(weights) + len(by_fp32.get(None, []))

    def one_weight(fw: FloatWeight, w, fp_err, stats, grid) -> tuple[_Tables, list]:
        """Rows of one FP32 weight, read once: measure every tensor matched to it."""
        part, probs = _Tables(label), []
        if fp_err:
            probs.append(f"FP32 weight '{fw.name}': {fp_err}")
        ms = by_fp32.get(fw.name, [])
        if not ms:
            _float_row(part, fw, variant, vweights, stats)
            if fp_err:
                part.rows[-1]["reason"] += f" (and the FP32 weight could not be read: {fp_err})"
        fp_hist = np.zeros(HIST_SIZE, np.int64)
        fp_done = w is None
        for m in ms:
            if w is None:
                _unreadable_row(part, fw, m.qt, stats, f"the FP32 weight could not be read: {fp_err}")
                continue
            try:
                fp_done |= _quant_row(part, variant, fw, m, w, grid, stats,
                                      None if fp_done else fp_hist)
            except QuantLensError as e:
                probs.append(f"'{m.qt.name}': {e}")
                _unreadable_row(part, fw, m.qt, stats, f"the quantized tensor could not be read: {e}")
        if not fp_done:
            fp32_hist(frozen(np.ascontiguousarray(w, np.float32).reshape(-1)), grid.origin, grid.inv, fp_hist)
        if w is not None:
            _add_fp32_hist(part, fw.name, grid, fp_hist)
        return part, probs

    def one_orphan(m: Match) -> tuple[_Tables, list]:
        part = _Tables(label)
        try:
            _quant_row(part, variant, None, m, None, None)
        except QuantLensError as e:
            return part, [f"'{m.qt.name}': {e}"]
        return part, []

    orphans = by_fp32.get(None, [])

    def run(i: int) -> tuple[_Tables, list]:
        with np.errstate(all="ignore"):  # per thread: invalid parameters are columns, not warnings
            if i >= len(fws):
                return one_orphan(orphans[i - len(fws)])
            return one_weight(fws[i], *ra.get(i))

    # The kernels release the GIL: tensors are measured on several cores, results kept in order.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (part, probs) in enumerate(pool.map(run, range(total)), 1):
            tab.merge(part)
            problems.extend(probs)
            if progress:
                progress(done, total)
    layers, channels, hist = tab.frames()
    return PairResult(layers, channels, hist, problems)


#: Least FP32 bytes the read-ahead thread may hold beyond the tensors the workers
#: measure (each worker holds one at a time); see :func:`read_ahead_budget`.
READ_AHEAD_BYTES = 32 << 20

#: Most bytes read ahead, whatever the tensor sizes: a larger budget raises the peak
#: RSS, which counts mapped pages, by as much.
READ_AHEAD_MAX_BYTES = 256 << 20


def read_ahead_budget(sizes: list[int], workers: int) -> int:
    """Bytes the read-ahead thread may hold: one largest tensor per worker.

    With less, a model of large tensors is read one tensor ahead only, and the reader
    and the workers take turns instead of overlapping: at 1B parameters (64 MiB
    tensors, two workers) 32 MiB -> 128 MiB took the cold analysis from 4.2-5.9 s to
    3.4-4.2 s (five order-alternated pairs, 2026-11-30) for 45 MB more peak RSS.

    Parameters
    ----------
    sizes : list of int
        Bytes of each FP32 tensor.
    workers : int
        Worker threads measuring tensors.

    Returns
    -------
    int
        ``workers`` times the largest size, between ``READ_AHEAD_BYTES`` and
        ``READ_AHEAD_MAX_BYTES``.
    """
    want = max(1, workers) * max(sizes, default=0)
    return int(min(READ_AHEAD_MAX_BYTES, max(READ_AHEAD_BYTES, want)))


def _threads() -> int:
    """Worker threads per analysis: ``QUANTLENS_THREADS``, default the number of CPUs (max 4)."""
    try:
        n = int(os.environ.get("QUANTLENS_THREADS", "0"))
    except ValueError:
        n = 0
    return n if n > 0 else min(4, os.cpu_count() or 1)
