"""Measurement helpers for the QuantLens benchmarks.

* ``run_isolated``: run ``module:function(*args, **kwargs)`` in a *fresh* Python
  subprocess and report wall time and peak-RSS growth (VmHWM from
  /proc/self/status, reset via /proc/self/clear_refs when the kernel allows it),
  with a parent-side watchdog (memory ceiling + timeout) so a runaway job cannot
  take the box down.
* ``bare_minmax``: load every FP32 and quantized weight array of a model pair
  into memory first, then time only ``a.min(); a.max()`` over each of them.
* ``cold_read``: sequentially read the same weight bytes after evicting them
  from the page cache (``drop_caches`` if permitted, else ``posix_fadvise``
  DONTNEED per file) and report which eviction method was used.

Every helper here can itself be run isolated (``measure_bare_minmax`` and
``measure_cold_read`` do so), so the numbers are not polluted by whatever the
calling process already holds in memory.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_bytes() -> int:
    return _status_kb("VmRSS") * 1024


def hwm_bytes() -> int:
    return _status_kb("VmHWM") * 1024


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). Returns True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# isolated execution
# --------------------------------------------------------------------------

_CHILD = r"""
import sys, os, json, pickle, time, importlib, traceback
spec_path = sys.argv[1]
with open(spec_path, "rb") as f:
    spec = pickle.load(f)
sys.path.insert(0, spec["cwd"])
from benchmarks import measure as _m
out = {"ok": False}
try:
    mod_name, fn_name = spec["target"].split(":")
    mod = importlib.import_module(mod_name)
    fn = getattr(mod, fn_name)
    for w in spec.get("warm_imports", []):
        importlib.import_module(w)
    t_w = time.perf_counter()
    for w in spec.get("warm_calls", []):
        wm, wf = w.split(":")
        getattr(importlib.import_module(wm), wf)()
    warm_s = time.perf_counter() - t_w
    import gc; gc.collect()
    if spec.get("evict_files"):  # cold: evicted here, right before the window, as cold_read does
        out["evict_method"] = _m.evict_page_cache(spec["evict_files"], "files")
        out["resident_fraction_after_evict"] = _m.cached_fraction(spec["evict_files"])
    hwm_reset = _m.reset_hwm()
    rss0 = _m.rss_bytes()
    hwm0 = _m.hwm_bytes()
    t0 = time.perf_counter()
    res = fn(*spec["args"], **spec["kwargs"])
    wall = time.perf_counter() - t0
    hwm1 = _m.hwm_bytes()
    out.update(ok=True, wall_s=wall, rss_before=rss0, hwm_before=hwm0, hwm_after=hwm1,
               peak_rss_growth=hwm1 - (rss0 if hwm_reset else hwm0),
               hwm_reset=hwm_reset, rss_after=_m.rss_bytes(), warm_s=warm_s)
    if spec["return_result"]:
        with open(spec["result_path"], "wb") as f:
            pickle.dump(res, f, protocol=pickle.HIGHEST_PROTOCOL)
except BaseException as e:
    out.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
with open(spec["out_path"], "w") as f:
    json.dump(out, f)
"""


def run_isolated(
    target: str,
    *args,
    kwargs: dict | None = None,
    return_result: bool = False,
    timeout: float | None = 1800.0,
    mem_limit_bytes: int | None = None,
    env: dict | None = None,
    warm_imports: tuple[str, ...] = (),
    warm_calls: tuple[str, ...] = (),
    python: str | None = None,
    quiet: bool = False,
    evict_files: tuple = (),
) -> dict:
    """Run ``target`` ("pkg.module:function") in a fresh python process.

    Returns a dict with ``ok``, ``wall_s`` (time of the call only, imports
    excluded), ``peak_rss_growth`` (bytes; VmHWM after the call minus RSS just
    before it), ``max_rss_parent_view`` (peak RSS of the child as polled by the
    parent, imports included), ``total_s`` (process lifetime) and, when
    ``return_result``, ``result`` (the unpickled return value).
    ``warm_imports`` are imported before the baseline is taken so their import
    cost is excluded from the measured window.  ``warm_calls`` ("module:function",
    no arguments) run after them, also outside the window (``warm_s`` is their time):
    what a long-running process does once at start-up, e.g. loading compiled kernels.
    ``evict_files`` (only they, ``scope="files"``) are evicted from the page cache after
    them, right before the window (``evict_method`` and ``resident_fraction_after_evict``
    are reported): a cold measurement must start as soon after the eviction as
    :func:`cold_read` does, see :func:`evict_page_cache`.
    """
    import psutil

    kwargs = kwargs or {}
    mem_limit_bytes = mem_limit_bytes or default_mem_limit()
    with tempfile.TemporaryDirectory(prefix="qlbench.") as td:
        spec = {
            "target": target,
            "args": list(args),
            "kwargs": kwargs,
            "cwd": str(REPO_ROOT),
            "return_result": return_result,
            "result_path": os.path.join(td, "result.pkl"),
            "out_path": os.path.join(td, "out.json"),
            "warm_imports": list(warm_imports),
            "warm_calls": list(warm_calls),
            "evict_files": [str(f) for f in evict_files],
        }
        spec_path = os.path.join(td, "spec.pkl")
        with open(spec_path, "wb") as f:
            pickle.dump(spec, f)
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
        if env:
            child_env.update(env)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [python or sys.executable, "-c", _CHILD, spec_path],
            cwd=str(REPO_ROOT),
            env=child_env,
            stdout=None if not quiet else subprocess.DEVNULL,
            stderr=None if not quiet else subprocess.DEVNULL,
        )
        ps = psutil.Process(proc.pid)
        max_rss = 0
        killed = None
        while proc.poll() is None:
            try:
                rss = ps.memory_info().rss
                max_rss = max(max_rss, rss)
            except psutil.Error:
                rss = 0
            elapsed = time.perf_counter() - t0
            if rss > mem_limit_bytes:
                killed = f"killed: RSS {rss / 2**30:.1f} GiB exceeded limit {mem_limit_bytes / 2**30:.1f} GiB"
            elif timeout is not None and elapsed > timeout:
                killed = f"killed: timeout after {elapsed:.0f} s"
            if killed:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.05 if elapsed < 5 else 0.25)
        total = time.perf_counter() - t0
        out: dict = {"ok": False}
        if os.path.exists(spec["out_path"]):
            with open(spec["out_path"]) as f:
                out = json.load(f)
        if killed:
            out = {"ok": False, "error": killed}
        elif not out.get("ok") and "error" not in out:
            out["error"] = f"child exited with code {proc.returncode} without a result"
        out["total_s"] = total
        out["max_rss_parent_view"] = max_rss
        out["target"] = target
        if out.get("ok") and return_result:
            with open(spec["result_path"], "rb") as f:
                out["result"] = pickle.load(f)
    return out


def default_mem_limit() -> int:
    """Leave ~3 GiB of headroom below total RAM (the box is shared)."""
    import psutil

    return max(2 << 30, psutil.virtual_memory().total - (3 << 30))


# --------------------------------------------------------------------------
# weight inventory of a (fp32, quantized) pair
# --------------------------------------------------------------------------


def weight_inventory(model_path: str | os.PathLike) -> list[dict]:
    """Return [{name, dtype, shape, file, offset, length}] for every initializer
    (external ones point into their data file; inline ones have file=None)."""
    import onnx

    model_path = Path(model_path)
    m = onnx.load(str(model_path), load_external_data=False)
    inv = []
    for t in m.graph.initializer:
        ent = {"name": t.name, "data_type": t.data_type, "shape": list(t.dims), "file": None}
        if t.data_location == onnx.TensorProto.EXTERNAL:
            kv = {e.key: e.value for e in t.external_data}
            ent["file"] = str(model_path.parent / kv["location"])
            ent["offset"] = int(kv.get("offset", 0))
            ent["length"] = int(kv["length"]) if "length" in kv else None
        inv.append(ent)
    return inv


def _load_array(ent, fh_cache, model):
    import numpy as np
    from onnx import helper, numpy_helper

    if ent["file"] is None:
        t = next(t for t in model.graph.initializer if t.name == ent["name"])
        return numpy_helper.to_array(t)
    dtype = helper.tensor_dtype_to_np_dtype(ent["data_type"])
    fh = fh_cache.get(ent["file"])
    if fh is None:
        fh = fh_cache[ent["file"]] = open(ent["file"], "rb")
    fh.seek(ent["offset"])
    n = int(np.prod(ent["shape"])) if ent["shape"] else 1
    a = np.fromfile(fh, dtype=dtype, count=n)
    return a.reshape(ent["shape"])


def load_weight_arrays(model_path) -> list:
    """All initializers of a model as numpy arrays (external data read directly)."""
    import onnx

    m = onnx.load(str(model_path), load_external_data=False)
    fhs: dict = {}
    try:
        return [_load_array(ent, fhs, m) for ent in weight_inventory(model_path)]
    finally:
        for fh in fhs.values():
            fh.close()


def pair_weight_arrays(fp32_path, quant_path, quant_only: bool = True) -> list:
    """FP32 weights plus the quantized variant's weights.

    With ``quant_only`` the variant contributes only its quantized integer
    tensors (``*_quantized``) and their scales / zero points, i.e. what an
    analysis must actually read; float tensors a quantizer copies through
    unchanged are skipped.
    """
    import onnx

    arrays = load_weight_arrays(fp32_path)
    m = onnx.load(str(quant_path), load_external_data=False)
    fhs: dict = {}
    try:
        for ent in weight_inventory(quant_path):
            n = ent["name"]
            if quant_only and not (
                n.endswith("_quantized") or n.endswith("_scale") or n.endswith("_zero_point")
            ):
                continue
            arrays.append(_load_array(ent, fhs, m))
    finally:
        for fh in fhs.values():
            fh.close()
    return arrays


def pair_bytes(fp32_path, quant_path, quant_only: bool = True) -> int:
    """Bytes of FP32 weights + quantized weights (same selection as pair_weight_arrays)."""
    import numpy as np
    from onnx import helper

    total = 0
    for path, is_q in ((fp32_path, False), (quant_path, True)):
        for ent in weight_inventory(path):
            n = ent["name"]
            if is_q and quant_only and not (
                n.endswith("_quantized") or n.endswith("_scale") or n.endswith("_zero_point")
            ):
                continue
            cnt = int(np.prod(ent["shape"])) if ent["shape"] else 1
            total += cnt * np.dtype(helper.tensor_dtype_to_np_dtype(ent["data_type"])).itemsize
    return total


# --------------------------------------------------------------------------
# bare numpy min+max
# --------------------------------------------------------------------------


def bare_minmax(fp32_path, quant_path, repeats: int = 5) -> dict:
    """Load all FP32 + quantized weight arrays first, then time only a.min(); a.max().

    Returns the best of ``repeats`` passes (and all of them)."""
    arrays = pair_weight_arrays(fp32_path, quant_path)
    nbytes = sum(a.nbytes for a in arrays)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in arrays:
            if a.size:
                a.min()
                a.max()
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "all_seconds": times, "bytes": nbytes, "n_arrays": len(arrays)}


def measure_bare_minmax(fp32_path, quant_path, **kw) -> dict:
    r = run_isolated("benchmarks.measure:bare_minmax", str(fp32_path), str(quant_path), return_result=True, **kw)
    if not r.get("ok"):
        raise RuntimeError(f"bare_minmax failed: {r.get('error')}")
    return r["result"]


# --------------------------------------------------------------------------
# cold sequential read
# --------------------------------------------------------------------------


def _files_and_ranges(fp32_path, quant_path) -> list[tuple[str, int, int]]:
    """(file, offset, length) of every byte range that pair_weight_arrays reads,
    plus the .onnx protobufs themselves."""
    import numpy as np
    from onnx import helper

    out = [(str(fp32_path), 0, os.path.getsize(fp32_path)), (str(quant_path), 0, os.path.getsize(quant_path))]
    for path, is_q in ((fp32_path, False), (quant_path, True)):
        for ent in weight_inventory(path):
            n = ent["name"]
            if ent["file"] is None:
                continue
            if is_q and not (n.endswith("_quantized") or n.endswith("_scale") or n.endswith("_zero_point")):
                continue
            ln = ent["length"]
            if ln is None:
                cnt = int(np.prod(ent["shape"])) if ent["shape"] else 1
                ln = cnt * np.dtype(helper.tensor_dtype_to_np_dtype(ent["data_type"])).itemsize
            out.append((ent["file"], ent["offset"], ln))
    return out


def evict_page_cache(files, scope: str = "all") -> str:
    """Evict ``files`` from the page cache. Returns the method used.

    ``scope="all"`` tries a global drop_caches (root) and falls back to
    posix_fadvise(DONTNEED) per file; ``scope="files"`` evicts only ``files`` (fadvise):
    the measuring program's own code and libraries stay in memory, as in a running server.

    Measure right after it, every time: this VM's balloon reports freed pages to the
    host after ~2 s (free page reporting), and the first touch of a reported page costs
    a host fault.  A cold read of the 1B pair took 4.9-5.1 s when it started right after
    the eviction and 8.8-9.3 s when it started 6 s later; a cold analysis 3.9-4.3 s
    against 4.9-5.5 s (2026-11-30)."""
    if scope not in ("all", "files"):
        raise ValueError(f"scope must be 'all' or 'files', not {scope!r}")
    files = sorted(set(map(str, files)))
    os.sync()  # clean pages only: fadvise cannot drop dirty ones
    if scope == "all":
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return "drop_caches"
        except OSError:
            pass
    for p in files:
        if not os.path.exists(p):
            continue
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return "posix_fadvise_dontneed"


def cached_fraction(files) -> float | None:
    """Fraction of the files' pages resident in the page cache (mincore), or None."""
    try:
        import ctypes
        import mmap

        import numpy as np

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        page = mmap.PAGESIZE
        tot = res = 0
        for p in sorted(set(map(str, files))):
            size = os.path.getsize(p)
            if size == 0:
                continue
            with open(p, "rb") as f:
                mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)  # private: from_buffer needs writable
            try:
                npages = (size + page - 1) // page
                vec = (ctypes.c_ubyte * npages)()
                anchor = ctypes.c_char.from_buffer(mm)
                rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec)
                del anchor
                if rc != 0:
                    return None
                res += int((np.frombuffer(bytes(vec), dtype=np.uint8) & 1).sum())
                tot += npages
            finally:
                mm.close()
        return res / tot if tot else None
    except Exception:
        return None


def cold_read(fp32_path, quant_path, evict: bool = True, block: int = 16 << 20,
              scope: str = "all") -> dict:
    """Evict (``scope``: see :func:`evict_page_cache`), then sequentially read every weight
    byte range of the pair (plus the .onnx protobufs) in file order with large reads.
    Returns seconds, bytes, method."""
    ranges = _files_and_ranges(fp32_path, quant_path)
    files = [r[0] for r in ranges]
    method = evict_page_cache(files, scope) if evict else "none (warm)"
    resident = cached_fraction(files) if evict else None  # verify the eviction (mincore)
    ranges.sort(key=lambda r: (r[0], r[1]))
    buf = bytearray(block)
    mv = memoryview(buf)
    nbytes = 0
    t0 = time.perf_counter()
    fh = None
    cur = None
    for path, off, ln in ranges:
        if path != cur:
            if fh:
                fh.close()
            fh = open(path, "rb", buffering=0)
            cur = path
        fh.seek(off)
        left = ln
        while left > 0:
            n = fh.readinto(mv[: min(block, left)])
            if not n:
                break
            left -= n
            nbytes += n
    if fh:
        fh.close()
    dt = time.perf_counter() - t0
    return {"seconds": dt, "bytes": nbytes, "evict_method": method, "GBps": nbytes / dt / 1e9 if dt else None,
            "resident_fraction_after_evict": resident}


def measure_cold_read(fp32_path, quant_path, scope: str = "all", **kw) -> dict:
    r = run_isolated("benchmarks.measure:cold_read", str(fp32_path), str(quant_path),
                     kwargs={"scope": scope}, return_result=True, **kw)
    if not r.get("ok"):
        raise RuntimeError(f"cold_read failed: {r.get('error')}")
    return r["result"]


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


if __name__ == "__main__":  # tiny CLI: python -m benchmarks.measure FP32 QUANT
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("fp32")
    ap.add_argument("quant")
    a = ap.parse_args()
    print(json.dumps({"bare_minmax": measure_bare_minmax(a.fp32, a.quant),
                      "cold_read": measure_cold_read(a.fp32, a.quant)}, indent=2))
