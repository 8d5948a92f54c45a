"""On-disk cache of per-variant analysis tables, keyed by content hash.

* A model's identity is the BLAKE2b hash of its file and every external data
  file it names.  Hashing a large model is paid once: the hash is remembered
  against the files' (device, inode, size, mtime, ctime), and ctime cannot be
  set back by a user, so a changed file is never served stale.
* Entries are ``.npz`` files (no pickle: object arrays are refused on read),
  written to a temporary name, fsynced and renamed, so readers see a whole entry
  or none.  Every member is read whole, which makes zipfile verify its CRC-32,
  and its header must account for its exact size; a damaged entry is deleted
  and recomputed.
* Text columns are stored dictionary-encoded (sorted UTF-8 categories + integer
  codes, -1 for missing), so a read builds pandas ``Categorical`` columns (or the
  original string dtype) without a Python loop over rows.
* A per-key lock file makes concurrent workers compute an entry once.
* The entries folder is bounded (``QUANTLENS_CACHE_MAX_BYTES``): least recently
  used entries go first.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import pandas as pd

from .errors import QuantLensError
from .tensors import external_data_path

__all__ = ["cache_dir", "content_hash", "entry_key", "load_entry", "store_entry", "key_lock",
           "roundtrip", "trim", "max_bytes", "ANALYSIS_VERSION", "DEFAULT_MAX_BYTES"]

#: Bump when the tables' meaning changes: old entries are then ignored.
ANALYSIS_VERSION = "3"
_CHUNK = 1 << 22


def cache_dir() -> Path:
    """``$QUANTLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/quantlens``, else ``~/.cache/quantlens``."""
    d = os.environ.get("QUANTLENS_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "quantlens")
    p = Path(d)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _model_files(path: Path) -> list[Path]:
    """The model file and the external data files its initializers name."""
    files = [path]
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable models are reported by the loader, not here
        return files
    seen, memo = set(), {}
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            try:  # the loader's own checks: never hash a file outside the model folder
                p = external_data_path(t, path.parent, memo=memo)[0]
            except QuantLensError:
                continue  # refused or missing: the loader reports it
            if p not in seen:
                seen.add(p)
                files.append(p)
    return files


def _stat_sig(p: Path) -> str:
    st = os.stat(p)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def content_hash(path: str | os.PathLike) -> str:
    """BLAKE2b-256 of the model file and its external data, memoized by file stats.

    The memo is keyed by the model file's stats and lists the external files
    with theirs, so a cache hit needs a few ``stat`` calls and no parsing.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file.

    Returns
    -------
    str
        Hex digest.
    """
    path = Path(path).resolve()
    memo = cache_dir() / "hashes" / (
        hashlib.sha256(f"{path}={_stat_sig(path)}".encode()).hexdigest() + ".json")
    try:
        rec = json.loads(memo.read_text())
        if all(_stat_sig(Path(f)) == sig for f, sig in rec["files"]):
            return rec["hash"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    files = _model_files(path)
    hasher = hashlib.blake2b(digest_size=32)
    for f in files:
        hasher.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                hasher.update(chunk)
    h = hasher.hexdigest()
    rec = {"hash": h, "files": [[str(f), _stat_sig(f)] for f in files]}
    _atomic_write(memo, json.dumps(rec).encode())
    return h


def entry_key(*parts: str) -> str:
    """Cache key of an entry from its inputs' hashes."""
    return hashlib.sha256("|".join((ANALYSIS_VERSION, *parts)).encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def key_lock(key: str):
    """Exclusive lock on ``key`` across processes (concurrent workers compute once)."""
    p = cache_dir() / "locks" / f"{key}.lock"
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _codes_width(n: int):
    return np.int8 if n < 2**7 else np.int16 if n < 2**15 else np.int32 if n < 2**31 else np.int64


def _encode(df: pd.DataFrame, prefix: str, arrays: dict, meta: dict) -> None:
    cols = []
    for c in df.columns:
        s = df[c]
        dt = str(s.dtype)
        if dt in ("Int64", "boolean"):
            arrays[f"{prefix}/{c}/m"] = s.isna().to_numpy(bool)
            arrays[f"{prefix}/{c}/v"] = s.fillna(0 if dt == "Int64" else False).to_numpy(
                "int64" if dt == "Int64" else bool)
        elif s.dtype.kind in "fiub":
            arrays[f"{prefix}/{c}/v"] = s.to_numpy()
        else:
            # Dictionary-encoded UTF-8 (a fixed-width str array would pad every cell to the
            # longest name): sorted categories and their codes, -1 for a missing value, so a
            # read builds a pandas Categorical without touching a row in Python.
            if isinstance(s.dtype, pd.CategoricalDtype):
                codes, uniques = s.cat.codes.to_numpy(np.int64), np.asarray(s.cat.categories, dtype=object)
                dt = str(s.cat.categories.dtype)
            else:
                codes, uniques = pd.factorize(s.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
            cats, inv = np.unique(np.array([str(u) for u in uniques], dtype=object), return_inverse=True)
            codes = np.where(codes < 0, -1, inv.reshape(-1)[np.maximum(codes, 0)]) if len(cats) else codes
            enc = [u.encode("utf-8", "surrogatepass") for u in cats]
            arrays[f"{prefix}/{c}/s"] = np.frombuffer(b"".join(enc), np.uint8)
            arrays[f"{prefix}/{c}/o"] = np.cumsum([0] + [len(e) for e in enc], dtype=np.int64)
            arrays[f"{prefix}/{c}/v"] = codes.astype(_codes_width(len(cats)))
            dt = "cat:" + dt
        cols.append([c, dt])
    meta[prefix] = cols


def _categories(arrays, prefix: str, c: str) -> pd.Index:
    blob, offs = arrays[f"{prefix}/{c}/s"].tobytes(), arrays[f"{prefix}/{c}/o"].tolist()
    return pd.Index([blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(offs[:-1], offs[1:])],
                    dtype="str")


def _decode(arrays, prefix: str, meta: dict, categorical: bool = False) -> pd.DataFrame:
    """One frame from its arrays.  Text columns come back as pandas ``Categorical`` (sorted
    categories) when ``categorical``, else in the dtype they were written with."""
    data = {}
    for c, dt in meta[prefix]:
        v = arrays[f"{prefix}/{c}/v"]
        if dt.startswith("cat:"):
            cats = _categories(arrays, prefix, c)
            if len(v) and (v.min() < -1 or v.max() >= len(cats)):
                raise ValueError(f"codes of {prefix}/{c} out of range")
            if categorical or dt[4:] == "category":
                s = pd.Series(pd.Categorical.from_codes(v, dtype=pd.CategoricalDtype(cats), validate=False))
            elif dt[4:] == "object":
                s = pd.Series(np.append(np.asarray(cats, dtype=object), None)[v], dtype=object)
            else:
                s = pd.Series(pd.array(cats, dtype=dt[4:]).take(v.astype(np.intp), allow_fill=True))
        elif dt in ("Int64", "boolean"):
            s = pd.Series(pd.arrays.IntegerArray(v, arrays[f"{prefix}/{c}/m"]) if dt == "Int64"
                          else pd.arrays.BooleanArray(v, arrays[f"{prefix}/{c}/m"]))
        else:
            s = pd.Series(v, copy=False)
        data[c] = s
    return pd.DataFrame(data, copy=False)  # our own arrays: not copied into 2-D blocks (~50 ms at 300M)


def _encode_frames(frames: dict[str, pd.DataFrame], extra: dict) -> dict:
    arrays, meta = {}, {}
    for name, df in frames.items():
        _encode(df, name, arrays, meta)
    arrays["__meta__"] = np.array(json.dumps({"frames": meta, "extra": extra}))
    return arrays


def _decode_frames(arrays, categorical: Sequence[str] = ()) -> tuple[dict[str, pd.DataFrame], dict]:
    meta = json.loads(str(arrays["__meta__"]))
    frames = {name: _decode(arrays, name, meta["frames"], name in categorical) for name in meta["frames"]}
    return frames, meta["extra"]


def roundtrip(frames: dict[str, pd.DataFrame], categorical: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """``frames`` as :func:`load_entry` would return them after :func:`store_entry` (same
    dtypes), without touching the disk: computed and cached results then look alike."""
    return _decode_frames(_encode_frames(frames, {}), categorical)[0]


def store_entry(key: str, frames: dict[str, pd.DataFrame], extra: dict,
                categorical: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """Write ``frames`` and a JSON-able ``extra`` under ``key`` atomically; returns the frames
    as a later :func:`load_entry` will (text columns of ``categorical`` as Categorical)."""
    arrays = _encode_frames(frames, extra)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = cache_dir() / "entries" / f"{key}.npz"
    _atomic_write(path, buf.getvalue())
    trim(keep=path)
    return _decode_frames(arrays, categorical)[0]


#: Default bound of the entries folder (``QUANTLENS_CACHE_MAX_BYTES``).
DEFAULT_MAX_BYTES = 4 << 30


def max_bytes() -> int:
    """``$QUANTLENS_CACHE_MAX_BYTES`` (bytes; 0 = unbounded), default :data:`DEFAULT_MAX_BYTES`."""
    try:
        n = int(os.environ.get("QUANTLENS_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES
    return max(n, 0)


def trim(keep: Path | None = None, limit: int | None = None) -> int:
    """Delete the least recently used entries until the folder holds at most ``limit``
    bytes (default :func:`max_bytes`); ``keep`` (the entry just written) always stays.

    A hosted server analyses every upload: without a bound the cache would grow until
    the disk is full.  Reads refresh an entry's mtime, so the models in use stay; a
    reader that already opened an entry keeps reading it after the unlink (POSIX).
    Returns the number of entries deleted."""
    limit = max_bytes() if limit is None else limit
    if limit <= 0:
        return 0
    entries = []
    for p in (cache_dir() / "entries").glob("*.npz"):
        try:
            st = p.stat()
        except OSError:  # deleted meanwhile by another worker
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(e[1] for e in entries)
    gone = 0
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if keep is not None and p == keep:
            continue
        try:
            p.unlink()
        except OSError:
            continue
        total -= size
        gone += 1
    return gone


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_members(p: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, each member read whole (so zipfile checks its CRC-32)
    and its header checked against its size: a damaged member raises, never decodes short."""
    out = {}
    with zipfile.ZipFile(p) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename}")
            data = z.read(info)  # BadZipFile on a CRC mismatch or a truncated member
            f = io.BytesIO(data)
            read_header = _HEADER_READERS.get(np.lib.format.read_magic(f))
            if read_header is None:
                raise ValueError(f"unexpected .npy version in {info.filename}")
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError("object arrays are never written")
            n = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if f.tell() + n * dtype.itemsize != len(data):
                raise ValueError(f"size of {info.filename} does not match its header")
            a = np.frombuffer(data, dtype=dtype, count=n, offset=f.tell())
            out[info.filename[:-4]] = a.reshape(shape, order="F" if fortran else "C")
    return out


def load_entry(key: str, categorical: Sequence[str] = ()) -> tuple[dict[str, pd.DataFrame], dict] | None:
    """Read entry ``key``; ``None`` when absent or damaged (a damaged one is removed).

    Text columns of the frames named in ``categorical`` come back as pandas ``Categorical``.
    """
    p = cache_dir() / "entries" / f"{key}.npz"
    if not p.exists():
        return None
    try:
        out = _decode_frames(_read_members(p), categorical)
    except FileNotFoundError:  # trimmed by another worker between the check and the read
        return None
    except Exception:  # a torn or corrupted entry: drop it, the caller recomputes
        try:
            p.unlink()
        except OSError:
            pass
        return None
    try:
        os.utime(p)  # recently used: trimmed last
    except OSError:
        pass
    return out
