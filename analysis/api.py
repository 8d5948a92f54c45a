"""``analyze``: the public entry point for notebooks, the CLI and the dashboard."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from .cache import content_hash, entry_key, key_lock, load_entry, store_entry
from .errors import ModelLoadError
from .model import ModelGraph, load_model
from .pair import analyze_pair
from .schema import CHANNEL_COLUMNS, HISTOGRAM_COLUMNS, LAYER_COLUMNS

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
        One row per channel of every per-channel or block-wise tensor.
    histograms : pandas.DataFrame
        Tidy bins: ``kind`` ``fp32`` (reference, ``variant == ""``), ``dq``
        (dequantized, same edges as ``fp32`` for the same ``fp32_name``) and
        ``code`` (stored integers).
    variants : list of str
        Variant labels, in the order given.
    problems : dict
        Variant label -> what could not be read.
    """

    fp32_path: str
    variant_paths: list
    variants: list
    layers: pd.DataFrame
    channels: pd.DataFrame
    histograms: pd.DataFrame
    problems: dict = field(default_factory=dict)


def variant_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Unique labels for variant files: the file stem, suffixed on a clash."""
    out, seen = [], {}
    for p in paths:
        stem = Path(p).stem
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        out.append(stem if k == 0 else f"{stem}_{k + 1}")
    return out


def _pair(fp32: ModelGraph, fp32_path, vpath, label, use_cache, progress):
    def compute():
        variant = load_model(vpath)
        r = analyze_pair(fp32(), variant, label, progress)
        return {"layers": r.layers, "channels": r.channels, "histograms": r.histograms}, r.problems

    if not use_cache:
        return compute()
    key = entry_key("pair", content_hash(fp32_path), content_hash(vpath))
    hit = load_entry(key)
    if hit is None:
        with key_lock(key):
            hit = load_entry(key)  # another worker may have finished it meanwhile
            if hit is None:
                frames, problems = compute()
                store_entry(key, frames, {"problems": problems, "label": label})
                return frames, problems
    frames, extra = hit
    old = extra.get("label", label)
    if old != label:  # entries are keyed by content; the label is the caller's
        for name in ("layers", "channels", "histograms"):
            df = frames[name]
            df.loc[df["variant"] == old, "variant"] = label
    return frames, extra.get("problems", [])


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
    hist = [parts[0]["histograms"].query("kind == 'fp32'")]
    hist += [p["histograms"].query("kind != 'fp32'") for p in parts]
    return Analysis(
        fp32_path=str(fp32_path), variant_paths=variant_paths, variants=labels,
        layers=pd.concat([p["layers"] for p in parts], ignore_index=True)[LAYER_COLUMNS],
        channels=pd.concat([p["channels"] for p in parts], ignore_index=True)[CHANNEL_COLUMNS],
        histograms=pd.concat(hist, ignore_index=True)[HISTOGRAM_COLUMNS],
        problems=problems,
    )
