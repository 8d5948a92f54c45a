"""Model catalogue: the ``.onnx`` files the server offers, each behind an opaque id.

The folder is scanned once at start-up.  The browser only ever sends ids; an id the
catalogue does not know is refused with a message, and no path from a request is
ever opened.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import onnx

__all__ = ["ModelEntry", "Catalogue", "scan_models", "QUANT_OPS"]

log = logging.getLogger(__name__)

#: Operators that only appear in quantized graphs.
QUANT_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "QLinearAdd", "QLinearMul", "QGemm", "ConvInteger", "MatMulInteger", "MatMulNBits",
    "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention", "GatherBlockQuantized",
    "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearSoftmax", "QLinearWhere", "DynamicQuantizeLSTM",
})
_MAX_FILES = 1000
_MAX_DEPTH = 4


@dataclass(frozen=True)
class ModelEntry:
    """One model file: ``id`` (opaque), ``name`` (path relative to the folder, shown to
    users), ``label`` (its name in the tables), ``path``, ``size``, ``quantized`` (has
    quantization ops; ``None`` when unreadable) and ``error``."""

    id: str
    name: str
    label: str
    path: Path
    size: int
    quantized: bool | None
    error: str | None = None


class Catalogue:
    """Read-only id -> :class:`ModelEntry` map of one model folder."""

    def __init__(self, root: Path, entries: list[ModelEntry]):
        self.root = root
        self.entries = list(entries)
        self._by_id = {e.id: e for e in self.entries}

    def get(self, model_id) -> ModelEntry | None:
        """The entry of ``model_id``; ``None`` for anything unknown (never raises)."""
        if not isinstance(model_id, str):
            return None
        return self._by_id.get(model_id)

    def __len__(self) -> int:
        return len(self.entries)

    def options(self) -> list[dict]:
        """``dcc.Dropdown`` options: readable models, labelled by their relative path."""
        return [{"label": e.name + ("" if e.quantized else "  (float)"), "value": e.id}
                for e in self.entries if e.error is None]

    def reference_guess(self) -> ModelEntry | None:
        """The likely FP32 reference: a float model whose name says fp32, else any float model."""
        ok = [e for e in self.entries if e.error is None]
        for cond in (lambda e: e.quantized is False and "fp32" in e.name.lower(),
                     lambda e: e.quantized is False, lambda e: True):
            hit = [e for e in ok if cond(e)]
            if hit:
                return hit[0]
        return None

    def default_variants(self, ref: ModelEntry | None, limit: int = 4) -> list[ModelEntry]:
        """Quantized models next to ``ref`` (same folder), at most ``limit``."""
        if ref is None:
            return []
        folder = Path(ref.name).parent
        same = [e for e in self.entries if e.error is None and e.quantized and e.id != ref.id
                and Path(e.name).parent == folder]
        return same[:limit]


def _model_id(rel: str, size: int) -> str:
    return hashlib.sha256(f"{rel}\0{size}".encode()).hexdigest()[:12]


def _has_quant_ops(path: Path) -> bool:
    m = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in m.graph.node}
    for f in m.functions:
        ops.update(n.op_type for n in f.node)
    return bool(ops & QUANT_OPS)


def _walk(root: Path):
    stack = [(root, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            children = sorted(d.iterdir())
        except OSError:
            continue
        for p in children:
            if p.name.startswith("."):
                continue
            if p.is_dir() and depth < _MAX_DEPTH and not p.is_symlink():
                stack.append((p, depth + 1))
            elif p.suffix.lower() == ".onnx" and p.is_file():
                yield p


def scan_models(root: str | Path) -> Catalogue:
    """Catalogue of the ``.onnx`` files under ``root`` (hidden folders skipped, symlinks
    that leave ``root`` ignored), sorted by relative path.

    Parameters
    ----------
    root : str or Path

    Returns
    -------
    Catalogue
    """
    root = Path(root).resolve()
    entries = []
    if not root.is_dir():
        log.warning("model folder %s does not exist: no models to offer", root)
        return Catalogue(root, [])
    for p in _walk(root):
        real = p.resolve()
        if not real.is_relative_to(root):
            log.warning("skipping %s: it points outside the model folder", p)
            continue
        rel = p.relative_to(root).as_posix()
        size = real.stat().st_size
        try:
            quantized, error = _has_quant_ops(real), None
        except Exception as e:  # noqa: BLE001 - any unreadable file is listed as such
            quantized, error = None, f"not a readable ONNX model ({type(e).__name__})"
        label = rel[:-5] if rel.lower().endswith(".onnx") else rel
        entries.append(ModelEntry(_model_id(rel, size), rel, label, real, size, quantized, error))
        if len(entries) >= _MAX_FILES:
            log.warning("more than %d models under %s: the rest are not offered", _MAX_FILES, root)
            break
    entries.sort(key=lambda e: e.name)
    return Catalogue(root, entries)
