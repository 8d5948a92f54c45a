"""``analyze``: the public entry point for notebooks, the CLI and the dashboard."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .cache import content_hash, entry_key, key_lock, load_entry, roundtrip, store_entry
from .errors import ModelLoadError
from .model import ModelGraph, load_model
from .pair import analyze_pair
from .schema import CHANNEL_COLUMNS, HISTOGRAM_COLUMNS, LAYER_COLUMNS
from .views import TableIndex

__all__ = ["Analysis", "analyze", "variant_labels"]


@dataclass
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    layers : pandas.DataFrame
        One row per quantized tensor per variant, plus one row per FP32 weight a
        variant left without quantization parameters (``status`` says why).
        Columns: :data:`analysis.schema.LAYER_COLUMNS` (see the README).
    channels : pandas.DataFrame
        One row per channel of every per-channel or block-wise tensor.  Text
        columns are pandas ``Categorical`` (sorted categories).
    histograms : pandas.DataFrame
        Tidy bins: ``kind`` ``fp32`` (reference, ``variant == ""``), ``dq``
        (dequantized, same edges as ``fp32`` for the same ``fp32_name``) and
        ``code`` (stored integers).  Text columns are pandas ``Categorical``.
    variants : list of str
        Variant labels, in the order given.
    problems : dict
        Variant label -> what could not be read.
    index : analysis.views.TableIndex
        Row positions by layer key (built lazily, once, thread-safe); pass it to
        the :mod:`analysis.views` functions that take ``index=``.  The tables are
        read-only: an index describes them as they were returned.
    """

    fp32_path: str
    variant_paths: list
    variants: list
    layers: pd.DataFrame
    channels: pd.DataFrame
    histograms: pd.DataFrame
    problems: dict = field(default_factory=dict)
    _index: TableIndex | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def index(self) -> TableIndex:
        """Lookups of rows by layer key over these tables (:class:`analysis.views.TableIndex`)."""
        with self._lock:
            if self._index is None:
                self._index = TableIndex(self.layers, self.channels, self.histograms)
            return self._index

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_index"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def variant_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Unique labels for variant files: the file stem, suffixed on a clash."""
    out, seen = [], {}
    for p in paths:
        stem = Path(p).stem
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        out.append(stem if k == 0 else f"{stem}_{k + 1}")
    return out


_CATEGORICAL = ("channels", "histograms")


def _pair(fp32: ModelGraph, fp32_path, vpath, label, use_cache, progress):
    def compute():
        # the variant is parsed while the FP32 weights are already being read
        r = analyze_pair(fp32(), lambda: load_model(vpath), label, progress)
        return {"layers": r.layers, "channels": r.channels, "histograms": r.histograms}, r.problems

    if not use_cache:
        frames, problems = compute()
        return roundtrip(frames, _CATEGORICAL), problems  # the dtypes a cache hit has
    key = entry_key("pair", content_hash(fp32_path), content_hash(vpath))
    hit = load_entry(key, _CATEGORICAL)
    if hit is None:
        with key_lock(key):
            hit = load_entry(key, _CATEGORICAL)  # another worker may have finished it meanwhile
            if hit is None:
                frames, problems = compute()
                return store_entry(key, frames, {"problems": problems, "label": label}, _CATEGORICAL), problems
    frames, extra = hit
    old = extra.get("label", label)
    if old != label:  # entries are keyed by content; the label is the caller's
        frames = {name: _relabel(df, old, label) for name, df in frames.items()}
    return frames, extra.get("problems", [])


def _relabel(df: pd.DataFrame, old: str, new: str) -> pd.DataFrame:
    v = df["variant"]
    if isinstance(v.dtype, pd.CategoricalDtype):
        names = np.array([new if c == old else c for c in v.cat.categories], dtype=object)
        cats, inv = np.unique(names, return_inverse=True)
        codes = v.cat.codes.to_numpy()
        codes = np.where(codes < 0, -1, inv.reshape(-1)[np.maximum(codes, 0)]) if len(cats) else codes
        v = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(cats, dtype="str")),
                                      validate=False)
    else:
        v = v.mask(v == old, new)
    return df.assign(variant=v)


def _concat(parts: list[tuple[pd.DataFrame, np.ndarray | None]], columns: list[str]) -> pd.DataFrame:
    """Row-wise concatenation of ``(frame, row mask or None)`` parts, column by column:
    categorical columns on the union of their (sorted) categories, plain columns with
    ``np.concatenate`` (no object round trip, one copy)."""
    full = [(p, m) for p, m in parts if (len(p) if m is None else m.any())]
    if not full:
        return parts[0][0].iloc[0:0][columns].reset_index(drop=True)
    if len(full) == 1 and full[0][1] is None:  # one variant's channels: nothing to join or copy
        return full[0][0][columns].reset_index(drop=True)
    data = {}
    for c in columns:
        cols = [(p[c], m) for p, m in full]
        if all(isinstance(x.dtype, pd.CategoricalDtype) for x, _ in cols):
            first = cols[0][0].cat.categories
            if all(x.cat.categories.equals(first) for x, _ in cols):
                cats = first
            else:
                cats = pd.Index(np.unique(np.concatenate(
                    [np.asarray(x.cat.categories, dtype=object) for x, _ in cols])), dtype="str")
            codes = []
            for x, m in cols:
                k = x.cat.codes.to_numpy()
                k = k if m is None else k[m]
                if not x.cat.categories.equals(cats):
                    k = np.append(cats.get_indexer(x.cat.categories), -1)[k]
                codes.append(k)
            width = np.int8 if len(cats) < 2**7 else np.int16 if len(cats) < 2**15 else np.int32
            data[c] = pd.Categorical.from_codes(np.concatenate(codes).astype(width, copy=False),
                                                dtype=pd.CategoricalDtype(cats), validate=False)
        elif all(x.dtype == cols[0][0].dtype and isinstance(x.dtype, np.dtype) for x, _ in cols):
            data[c] = np.concatenate([x.to_numpy() if m is None else x.to_numpy()[m] for x, m in cols])
        else:
            data[c] = pd.concat([x if m is None else x[m] for x, m in cols], ignore_index=True)
    return pd.DataFrame(data, copy=False)  # fresh arrays: not copied again into 2-D blocks


def analyze(fp32_path: str | os.PathLike, variant_paths: Sequence[str | os.PathLike], *,
            cache: bool = True, labels: Sequence[str] | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> Analysis:
    """Analyse quantized variants against their FP32 model.

    Parameters
    ----------
    fp32_path : str or os.PathLike
        The FP32 model that was fed to the quantizer.
    variant_paths : sequence of str or os.PathLike
        Quantized variants (any layout; external data allowed inside their folder).
    cache : bool, default True
        Reuse and store results under ``QUANTLENS_CACHE_DIR``, keyed by the files'
        content; ``False`` recomputes and stores nothing.
    labels : sequence of str, optional
        Variant names in the tables (default: file stems).
    progress : callable, optional
        ``progress(done, total, label)`` while tensors are analysed (not on a cache hit).

    Returns
    -------
    Analysis

    Raises
    ------
    analysis.QuantLensError
        A model cannot be read (message says which and why).

    Examples
    --------
    >>> a = analyze("data/cnn_fp32.onnx", ["data/cnn_int8_qdq_perchannel.onnx"])  # doctest: +SKIP
    >>> a.layers.nsmallest(3, "sqnr_db")[["variant", "fp32_name", "sqnr_db"]]  # doctest: +SKIP
    """
    variant_paths = [str(p) for p in variant_paths]
    if not variant_paths:
        raise ModelLoadError("give at least one quantized variant to compare with the FP32 model")
    for p in [fp32_path, *variant_paths]:
        if not Path(p).is_file():
            raise ModelLoadError(f"cannot open '{p}': no such file")
    labels = list(labels) if labels else variant_labels(variant_paths)
    loaded = {}

    def fp32():
        if "m" not in loaded:
            loaded["m"] = load_model(fp32_path)
        return loaded["m"]

    if not cache:
        fp32()
    parts, problems = [], {}
    for vpath, label in zip(variant_paths, labels):
        cb = (lambda d, t, _l=label: progress(d, t, _l)) if progress else None
        frames, probs = _pair(fp32, fp32_path, vpath, label, cache, cb)
        parts.append(frames)
        problems[label] = probs
    is_ref = [(p["histograms"]["kind"] == "fp32").to_numpy(bool) for p in parts]
    hist = [(parts[0]["histograms"], is_ref[0])] + [(p["histograms"], ~r) for p, r in zip(parts, is_ref)]
    return Analysis(
        fp32_path=str(fp32_path), variant_paths=variant_paths, variants=labels,
        layers=pd.concat([p["layers"] for p in parts], ignore_index=True)[LAYER_COLUMNS],
        channels=_concat([(p["channels"], None) for p in parts], CHANNEL_COLUMNS),
        histograms=_concat(hist, HISTOGRAM_COLUMNS),
        problems=problems,
    )
