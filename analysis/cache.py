"""On-disk cache of per-variant analysis tables, keyed by content hash.

* A model's identity is the BLAKE2b hash of its file and every external data
  file it names.  Hashing a large model is paid once: the hash is remembered
  against the files' (device, inode, size, mtime, ctime), and ctime cannot be
  set back by a user, so a changed file is never served stale.
* Entries are ``.npz`` files (no pickle: ``allow_pickle=False`` on read), written
  to a temporary name, fsynced and renamed, so readers see a whole entry or
  none.  The zip CRC of every member is verified on read; a damaged entry is
  deleted and recomputed.
* A per-key lock file makes concurrent workers compute an entry once.
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

import numpy as np
import onnx
import pandas as pd

from .errors import QuantLensError
from .tensors import external_data_path

__all__ = ["cache_dir", "content_hash", "entry_key", "load_entry", "store_entry", "key_lock",
           "ANALYSIS_VERSION"]

#: Bump when the tables' meaning changes: old entries are then ignored.
ANALYSIS_VERSION = "2"
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
    seen = set()
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            try:  # the loader's own checks: never hash a file outside the model folder
                p = external_data_path(t, path.parent)[0]
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


def _encode(df: pd.DataFrame, prefix: str, arrays: dict, meta: dict) -> None:
    cols = []
    for c in df.columns:
        s = df[c]
        mask = s.isna().to_numpy(bool)
        dt = str(s.dtype)
        if dt in ("Int64", "boolean"):
            vals = s.fillna(0 if dt == "Int64" else False).to_numpy("int64" if dt == "Int64" else bool)
        elif s.dtype.kind in "fiub":
            vals = s.to_numpy()
        else:
            # Dictionary-encoded UTF-8: a fixed-width str array would pad every cell to the
            # longest name (a 100k-character tensor name times every histogram row).
            codes, uniques = pd.factorize(np.array(["" if m else str(v) for v, m in zip(s.tolist(), mask)],
                                                   dtype=object))
            enc = [u.encode("utf-8", "surrogatepass") for u in uniques]
            arrays[f"{prefix}/{c}/s"] = np.frombuffer(b"".join(enc), np.uint8)
            arrays[f"{prefix}/{c}/o"] = np.cumsum([0] + [len(e) for e in enc], dtype=np.int64)
            vals = codes.astype(np.int64)
            dt = "utf8:" + dt
        arrays[f"{prefix}/{c}/v"] = vals
        arrays[f"{prefix}/{c}/m"] = mask
        cols.append([c, dt])
    meta[prefix] = cols


def _decode(npz, prefix: str, meta: dict) -> pd.DataFrame:
    data = {}
    for c, dt in meta[prefix]:
        v, m = npz[f"{prefix}/{c}/v"], npz[f"{prefix}/{c}/m"]
        if dt.startswith("utf8:"):
            blob, offs = npz[f"{prefix}/{c}/s"].tobytes(), npz[f"{prefix}/{c}/o"]
            uniques = np.array([blob[a:b].decode("utf-8", "surrogatepass")
                                for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())] + [""], dtype=object)
            s = pd.Series(uniques[v], dtype=object)
            s[m] = None
            if dt != "utf8:object":
                s = s.astype(dt[5:])
        elif dt.startswith("text:"):
            s = pd.Series(v.astype(object), dtype=object)
            s[m] = None
            if dt != "text:object":
                s = s.astype(dt[5:])
        elif dt in ("Int64", "boolean"):
            s = pd.Series(pd.array(v, dtype=dt))
            s[m] = pd.NA
        else:
            s = pd.Series(v)
        data[c] = s
    return pd.DataFrame(data)


def store_entry(key: str, frames: dict[str, pd.DataFrame], extra: dict) -> None:
    """Write ``frames`` and a JSON-able ``extra`` under ``key`` atomically."""
    arrays, meta = {}, {}
    for name, df in frames.items():
        _encode(df, name, arrays, meta)
    arrays["__meta__"] = np.array(json.dumps({"frames": meta, "extra": extra}))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write(cache_dir() / "entries" / f"{key}.npz", buf.getvalue())


def load_entry(key: str) -> tuple[dict[str, pd.DataFrame], dict] | None:
    """Read entry ``key``; ``None`` when absent or damaged (a damaged one is removed)."""
    p = cache_dir() / "entries" / f"{key}.npz"
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as npz:
            with zipfile.ZipFile(p) as z:
                if z.testzip() is not None:  # CRC of every member
                    raise ValueError("CRC mismatch")
            meta = json.loads(str(npz["__meta__"]))
            frames = {name: _decode(npz, name, meta["frames"]) for name in meta["frames"]}
            return frames, meta["extra"]
    except Exception:  # a torn or corrupted entry: drop it, the caller recomputes
        try:
            p.unlink()
        except OSError:
            pass
        return None
