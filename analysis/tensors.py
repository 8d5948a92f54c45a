"""Decode ``TensorProto`` payloads into NumPy arrays without extra copies.

Reads ``raw_data``, the typed fields (``int32_data`` carries every small integer
type, float16 and float8 bit patterns, and packed 4-bit pairs) and external data
(memory-mapped, after checking that the file stays inside the model folder).
4-bit types are unpacked to ``int8`` (element ``2i`` in the low nibble, INT4 as
two's complement); float8 types come back as ``ml_dtypes`` arrays.
"""

from __future__ import annotations

import math
import mmap
import os
import stat
from pathlib import Path

import ml_dtypes
import numpy as np
from onnx import TensorProto

from .errors import TensorReadError, UnsafeModelError

__all__ = [
    "prefetch",
    "DTYPE_NAMES",
    "INTEGER_TYPES",
    "FLOAT_TYPES",
    "FLOAT8_TYPES",
    "dtype_name",
    "tensor_np_dtype",
    "tensor_numel",
    "tensor_shape",
    "tensor_to_array",
    "external_data_path",
    "unpack_4bit",
]

_NP = {
    TensorProto.FLOAT: np.dtype(np.float32),
    TensorProto.UINT8: np.dtype(np.uint8),
    TensorProto.INT8: np.dtype(np.int8),
    TensorProto.UINT16: np.dtype(np.uint16),
    TensorProto.INT16: np.dtype(np.int16),
    TensorProto.INT32: np.dtype(np.int32),
    TensorProto.INT64: np.dtype(np.int64),
    TensorProto.BOOL: np.dtype(np.bool_),
    TensorProto.FLOAT16: np.dtype(np.float16),
    TensorProto.DOUBLE: np.dtype(np.float64),
    TensorProto.UINT32: np.dtype(np.uint32),
    TensorProto.UINT64: np.dtype(np.uint64),
    TensorProto.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    TensorProto.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    TensorProto.FLOAT8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    TensorProto.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    TensorProto.FLOAT8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
}
_FOUR_BIT = {TensorProto.INT4, TensorProto.UINT4}

#: ONNX element type -> short lower-case name used in every table.
DTYPE_NAMES = {
    TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", TensorProto.INT8: "int8",
    TensorProto.UINT16: "uint16", TensorProto.INT16: "int16", TensorProto.INT32: "int32",
    TensorProto.INT64: "int64", TensorProto.BOOL: "bool", TensorProto.FLOAT16: "float16",
    TensorProto.DOUBLE: "float64", TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64",
    TensorProto.BFLOAT16: "bfloat16", TensorProto.FLOAT8E4M3FN: "float8e4m3fn",
    TensorProto.FLOAT8E4M3FNUZ: "float8e4m3fnuz", TensorProto.FLOAT8E5M2: "float8e5m2",
    TensorProto.FLOAT8E5M2FNUZ: "float8e5m2fnuz", TensorProto.UINT4: "uint4",
    TensorProto.INT4: "int4", TensorProto.STRING: "string",
}
#: Element types whose values are quantization codes.
INTEGER_TYPES = {TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16,
                 TensorProto.INT32, TensorProto.UINT4, TensorProto.INT4}
FLOAT8_TYPES = {TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ,
                TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ}
#: Element types an FP32 reference weight may have.
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}

_MAX_ELEMENTS = 1 << 40  # far beyond any real model; guards dims overflow


def dtype_name(data_type: int) -> str:
    """Short name of an ONNX element type (``"int8"``, ``"float8e4m3fn"``...)."""
    return DTYPE_NAMES.get(data_type, f"type{data_type}")


def tensor_np_dtype(data_type: int) -> np.dtype:
    """NumPy / ``ml_dtypes`` dtype of an ONNX element type (not for 4-bit types)."""
    if data_type not in _NP:
        raise TensorReadError(f"element type {dtype_name(data_type)} has no NumPy dtype")
    return _NP[data_type]


def tensor_shape(t: TensorProto) -> tuple[int, ...]:
    """Shape of ``t`` as a tuple, validated (no negative dims, bounded size)."""
    dims = tuple(int(d) for d in t.dims)
    if any(d < 0 for d in dims):
        raise TensorReadError(f"tensor '{t.name}' has a negative dimension {dims}")
    n = 1
    for d in dims:
        n *= max(d, 1)  # a zero dim does not make (0, 2**40, 2**40) a shape NumPy can hold
        if n > _MAX_ELEMENTS:
            raise TensorReadError(f"tensor '{t.name}' claims {dims}: more elements than any model holds")
    return dims


def tensor_numel(t: TensorProto) -> int:
    """Number of elements of ``t`` (1 for a scalar)."""
    return math.prod(tensor_shape(t))


def unpack_4bit(packed: np.ndarray, n: int, signed: bool) -> np.ndarray:
    """Unpack ``n`` 4-bit values from bytes: element ``2i`` is the low nibble.

    Parameters
    ----------
    packed : np.ndarray
        uint8 bytes, at least ``ceil(n / 2)`` of them.
    n : int
        Number of elements.
    signed : bool
        INT4 (two's complement, -8..7) when true, UINT4 (0..15) otherwise.

    Returns
    -------
    np.ndarray
        int8 array of length ``n``.
    """
    b = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if b.size * 2 < n:
        raise TensorReadError(f"4-bit data holds {b.size * 2} values, {n} expected")
    out = np.empty(2 * b.size, np.int8)
    out[0::2] = b & 0x0F
    out[1::2] = b >> 4
    out = out[:n]
    if signed:
        out = np.where(out >= 8, out - 16, out).astype(np.int8)
    return out


#: ``external_data`` keys ONNX defines (onnx >= 1.21 ignores others; QuantLens refuses them).
EXTERNAL_DATA_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def _shown(s: str, n: int = 200) -> str:
    """``s`` for a message: control characters escaped, cut after ``n`` characters."""
    s = s.encode("unicode_escape").decode("ascii") if not s.isprintable() else s
    return s if len(s) <= n else f"{s[:n]}... ({len(s)} characters)"


def external_data_path(t: TensorProto, base_dir: Path, need: int | None = None,
                       memo: dict | None = None) -> tuple[Path, int, int | None]:
    """Resolve the external file of ``t`` safely.

    The location must be relative, free of ``..``, not a symbolic link, not a
    hard link, and its real path must stay inside ``base_dir``; the keys must
    be ONNX's own; any other case raises :class:`UnsafeModelError`.

    Parameters
    ----------
    need : int, optional
        Bytes the tensor occupies: checked against the file size when the
        tensor states no ``length``.
    memo : dict, optional
        Per-model memo of files already checked (location -> real path, size):
        every tensor of a large model usually lives in one file, which is then
        checked once instead of once per tensor.

    Returns
    -------
    (path, offset, length)
        ``length`` is ``None`` when the tensor does not state it.
    """
    info = {}
    for e in t.external_data:
        if type(e.key) is bytes or type(e.value) is bytes:  # not UTF-8 text
            raise UnsafeModelError(f"tensor '{t.name}': an external data entry is not UTF-8 text")
        if e.key not in EXTERNAL_DATA_KEYS:
            raise UnsafeModelError(f"tensor '{t.name}': unknown external data key '{_shown(e.key, 100)}' "
                                   f"(ONNX allows {', '.join(sorted(EXTERNAL_DATA_KEYS))})")
        if e.key in info:
            raise UnsafeModelError(f"tensor '{t.name}': external data key '{e.key}' is given twice")
        info[e.key] = e.value
    loc = info.get("location", "")
    if not loc:
        raise TensorReadError(f"tensor '{t.name}' is external but names no location")
    if "\0" in loc:
        raise UnsafeModelError(f"tensor '{t.name}': external data location '{_shown(loc)}' contains a NUL byte")
    shown = _shown(loc)
    if os.path.isabs(loc) or loc.startswith(("/", "\\")) or ":" in loc:
        raise UnsafeModelError(f"tensor '{t.name}': external data location '{shown}' is absolute")
    parts = Path(loc.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafeModelError(f"tensor '{t.name}': external data location '{shown}' leaves the model folder")
    if memo is not None and loc in memo:
        real, size = memo[loc]
        return real, *_span(t, info, shown, need, size)
    base = Path(os.path.realpath(base_dir))
    cand = base_dir / loc
    # Check every component for links before resolving: a symlinked folder is an escape too.
    cur = Path(base_dir)
    try:
        for p in parts:
            cur = cur / p
            if cur.is_symlink():
                raise UnsafeModelError(f"tensor '{t.name}': external data path '{shown}' goes through a symbolic link")
        real = Path(os.path.realpath(cand))
    except OSError as e:  # e.g. a component longer than NAME_MAX
        raise TensorReadError(f"tensor '{t.name}': external data file '{shown}' cannot be read ({e.strerror})") from None
    if base != real and base not in real.parents:
        raise UnsafeModelError(f"tensor '{t.name}': external data '{shown}' resolves outside the model folder")
    try:
        st = os.stat(real)
    except OSError as e:
        raise TensorReadError(f"tensor '{t.name}': external data file '{shown}' cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeModelError(f"tensor '{t.name}': external data '{shown}' is not a regular file")
    if st.st_nlink > 1:
        raise UnsafeModelError(f"tensor '{t.name}': external data '{shown}' has multiple hard links")
    if memo is not None:
        memo[loc] = (real, st.st_size)
    return real, *_span(t, info, shown, need, st.st_size)


def _span(t: TensorProto, info: dict, shown: str, need: int | None, size: int) -> tuple[int, int | None]:
    """Offset and length of ``t`` in a checked file of ``size`` bytes."""
    try:
        offset = int(info.get("offset", 0) or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        raise TensorReadError(f"tensor '{t.name}': external data offset/length are not integers") from None
    if offset < 0 or (length is not None and length < 0):
        raise TensorReadError(f"tensor '{t.name}': negative external data offset or length")
    span = length if length is not None else (need or 0)
    if offset + span > size:
        raise TensorReadError(
            f"tensor '{t.name}': external data needs bytes {offset}..{offset + span} "
            f"but '{shown}' has {size}")
    return offset, length


def _raw_bytes_needed(data_type: int, n: int) -> int:
    if data_type in _FOUR_BIT:
        return (n + 1) // 2
    return n * _NP[data_type].itemsize


def _map_readonly(path: Path, dtype: np.dtype, count: int, offset: int) -> np.ndarray:
    """``count`` items of ``dtype`` at byte ``offset`` of ``path``, memory-mapped read-only.

    A plain ``ndarray`` over an ``mmap`` (unmapped when the array goes), not an
    ``np.memmap``: that subclass runs Python code on every view and reduction of the
    array, which cost 0.1-0.2 s per 300M-parameter analysis.

    Raises
    ------
    OSError, ValueError
        The file cannot be opened or is shorter than the span.
    """
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, count * dtype.itemsize + offset - start, access=mmap.ACCESS_READ, offset=start)
    finally:
        os.close(fd)
    return np.frombuffer(mm, dtype, count, offset - start)


def prefetch(a: np.ndarray) -> bool:
    """Ask the kernel to read the whole mapping behind ``a`` now (``MADV_WILLNEED``).

    Page faults alone keep one read-ahead window (8 MiB here) in flight; a whole tensor
    asked for at once keeps the disk busier (1B QDQ pair, cold: 3.63-3.75 -> 3.27-3.47 s
    for the read-ahead thread of :mod:`analysis.pair`).

    Returns
    -------
    bool
        Whether ``a`` is memory-mapped (else nothing is done).
    """
    b = a
    while isinstance(b, np.ndarray):  # views, then the frombuffer array over the mapping
        b = b.base
    if isinstance(b, memoryview):
        b = b.obj
    if not isinstance(b, mmap.mmap):
        return False
    try:
        b.madvise(mmap.MADV_WILLNEED)
    except (OSError, ValueError, AttributeError):  # closed, or no madvise on this platform
        return False
    return True


def tensor_to_array(t: TensorProto, base_dir: Path | None = None, memo: dict | None = None) -> np.ndarray:
    """Decode ``t`` into a NumPy array of its logical shape.

    Parameters
    ----------
    t : onnx.TensorProto
        The tensor; external data is memory-mapped from ``base_dir``.
    base_dir : pathlib.Path, optional
        Folder of the model file (required for external tensors).

    Returns
    -------
    np.ndarray
        Read-only when memory-mapped.  INT4/UINT4 come back unpacked as int8;
        float8 and bfloat16 as ``ml_dtypes`` arrays.

    Raises
    ------
    TensorReadError
        Unsupported type, data shorter or longer than the dims say.
    UnsafeModelError
        External data escaping the model folder.
    """
    dt = t.data_type
    if dt not in _NP and dt not in _FOUR_BIT:
        raise TensorReadError(f"tensor '{t.name}' has unsupported element type {dtype_name(dt)}")
    shape = tensor_shape(t)
    n = math.prod(shape)  # exact: tensor_shape bounded it
    four = dt in _FOUR_BIT
    store = np.dtype(np.uint8) if four else _NP[dt]
    need = _raw_bytes_needed(dt, n)
    if t.data_location == TensorProto.EXTERNAL:
        if base_dir is None:
            raise UnsafeModelError(f"tensor '{t.name}' lives in an external file, which is not allowed here")
        path, offset, length = external_data_path(t, base_dir, need, memo)
        if length is not None and length != need:
            raise TensorReadError(f"tensor '{t.name}': external length {length} bytes, {need} expected")
        if need == 0:
            flat = np.empty(0, store)
        else:
            try:
                flat = _map_readonly(path, store, need // store.itemsize, offset)
            except (OSError, ValueError) as e:  # e.g. the file shrank after the checks
                raise TensorReadError(f"tensor '{t.name}': external data cannot be mapped ({e})") from None
    elif t.HasField("raw_data"):
        raw = t.raw_data
        if len(raw) != need:
            raise TensorReadError(f"tensor '{t.name}': raw_data has {len(raw)} bytes, {shape} needs {need}")
        flat = np.frombuffer(raw, dtype=store)
    else:
        flat = _typed_field(t, dt, store)
        if four:
            if flat.size < need:
                raise TensorReadError(f"tensor '{t.name}': {flat.size} packed bytes, {need} needed")
        elif flat.size != n:
            raise TensorReadError(f"tensor '{t.name}': {flat.size} values stored, shape {shape} needs {n}")
    if four:
        return unpack_4bit(flat, n, signed=dt == TensorProto.INT4).reshape(shape)
    return flat.reshape(shape)


def _typed_field(t: TensorProto, dt: int, store: np.dtype) -> np.ndarray:
    if dt == TensorProto.FLOAT:
        return np.asarray(t.float_data, np.float32)
    if dt == TensorProto.DOUBLE:
        return np.asarray(t.double_data, np.float64)
    if dt == TensorProto.INT64:
        return np.asarray(t.int64_data, np.int64)
    if dt in (TensorProto.UINT32, TensorProto.UINT64):
        return np.asarray(t.uint64_data, np.uint64).astype(store)
    vals = np.asarray(t.int32_data, np.int64)
    if dt in (TensorProto.FLOAT16, TensorProto.BFLOAT16) or dt in FLOAT8_TYPES:
        bits = np.uint16 if store.itemsize == 2 else np.uint8
        return vals.astype(bits).view(store)
    if dt in _FOUR_BIT:
        return vals.astype(np.uint8)
    return vals.astype(store)
