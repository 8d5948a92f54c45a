"""Dashboard benchmark: server-side callback latency, bytes on the wire, cache-hit reopen.

    python -m benchmarks.dashboard                  # everything (generates the 2,000-layer set on first use)
    python -m benchmarks.dashboard --interactions 100 --repeat 1 --max-minutes 20   # shorter
    python -m benchmarks.dashboard --no-dashboard   # only the cache-hit reopen timings

1. ``ensure_dash_models``: a seeded chain of 2,000 small MatMul / Gemm / Conv layers and its
   ORT variants (QDQ per-channel int8, QOperator per-tensor uint8, dynamic uint8) in
   ``benchmarks/.models/dash2000/`` (git-ignored).
2. ``MiniRenderer`` + ``UserModel``: ``create_app(model_dir=...)`` driven through Flask's test
   client exactly as dash-renderer drives it; p50 / p95 of every callback over seeded actions
   (target p95 <= 50 ms); callbacks that miss it are re-posted under cProfile.
3. Bytes of the initial page (target <= 1.5 MB), of the JS/CSS assets, of each figure
   (histogram of one layer <= 100 KB).
4. ``measure_reopen``: ``analysis.analyze(..., cache=True)`` cache hit in fresh processes at
   every benchmark size present (target <= 0.5 s).

Everything uses its own QUANTLENS_CACHE_DIR (``benchmarks/.models/.qlcache-dashboard``).
Prints a table of figures vs targets and writes ``benchmarks/results/dashboard.json``;
exit status 0 when every judged target is met, else 1.  See benchmarks/README.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from dashapp.state import apply_patch, is_patch

from .generate import DEFAULT_OUT

DASH_SET = "dash2000"
SELECTION_ID = "selection-store"  # dashapp.ids.SELECTION_STORE (read from dashapp.ids at run time too)
T_TOKENS = 8                      # rows of the 2-D activation [T, d]
WIDTHS = (16, 24, 32, 40, 48)     # layer widths: 256 .. 6,912 parameters per weight
LAYER_KINDS = ("matmul", "gemm", "conv")
OPSET = 17
IR_VERSION = 8
VARIANT_FILES = {
    "qdq": "qdq_int8_perchannel.onnx",   # quantize_static QDQ, per-channel int8 weights, uint8 activations
    "qop": "qop_uint8_pertensor.onnx",   # quantize_static QOperator, per-tensor uint8 weights
    "dyn": "dyn_uint8.onnx",             # quantize_dynamic, uint8 weights
}
FP32_FILE = "fp32.onnx"


# ---------------------------------------------------------------------------
# 1. the 2,000-layer model set
# ---------------------------------------------------------------------------


def layer_plan(n_layers: int, seed: int) -> list[dict]:
    """Kind and widths of each layer (seeded): MatMul (no bias), Gemm transB=1 (+bias),
    Conv 3x1 over the tokens (+bias)."""
    rng = np.random.default_rng([seed, 2000])
    d = WIDTHS[2]
    plan = []
    for i in range(n_layers):
        kind = LAYER_KINDS[int(rng.integers(len(LAYER_KINDS)))]
        d_out = int(WIDTHS[int(rng.integers(len(WIDTHS)))]) if i < n_layers - 1 else WIDTHS[2]
        plan.append({"i": i, "kind": kind, "d_in": d, "d_out": d_out})
        d = d_out
    return plan


def _weights(rng, shape, axis, fan_in):
    w = rng.standard_normal(shape, dtype=np.float32)
    ch = (rng.lognormal(0.0, 0.5, size=shape[axis]) / math.sqrt(fan_in)).astype(np.float32)
    b = [1] * len(shape)
    b[axis] = shape[axis]
    w *= ch.reshape(b)
    n_out = int(rng.binomial(w.size, 2e-3))           # a few outliers: per-tensor grids suffer
    if n_out:
        w.reshape(-1)[rng.choice(w.size, n_out, replace=False)] *= np.float32(12.0)
    return w


def write_fp32_chain(path: Path, n_layers: int, seed: int) -> dict:
    """A chain of ``n_layers`` small MatMul / Gemm / Conv layers, each followed by Tanh
    (bounded activations for calibration).  All tensors inline (the file is ~20 MB)."""
    from onnx import TensorProto, helper, numpy_helper

    plan = layer_plan(n_layers, seed)
    nodes, inits, n_params = [], [], 0
    shapes_done = set()

    def shape_const(name, values):
        if name not in shapes_done:
            shapes_done.add(name)
            inits.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    x = "x"
    for p in plan:
        i, kind, di, do = p["i"], p["kind"], p["d_in"], p["d_out"]
        rng = np.random.default_rng([seed, i])
        pre = f"layers.{i:04d}.{kind}"
        if kind == "matmul":
            w = _weights(rng, (di, do), 1, di)
            inits.append(numpy_helper.from_array(w, pre + ".weight"))
            y = pre + ".out"
            nodes.append(helper.make_node("MatMul", [x, pre + ".weight"], [y], name=pre))
            n_params += w.size
        elif kind == "gemm":
            w = _weights(rng, (do, di), 0, di)
            b = (rng.standard_normal(do, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
            inits += [numpy_helper.from_array(w, pre + ".weight"), numpy_helper.from_array(b, pre + ".bias")]
            y = pre + ".out"
            nodes.append(helper.make_node("Gemm", [x, pre + ".weight", pre + ".bias"], [y], name=pre, transB=1))
            n_params += w.size + b.size
        else:  # conv over the token axis: [T, di] -> [1, di, T, 1] -> Conv 3x1 -> [T, do]
            w = _weights(rng, (do, di, 3, 1), 0, di * 3)
            b = (rng.standard_normal(do, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
            inits += [numpy_helper.from_array(w, pre + ".weight"), numpy_helper.from_array(b, pre + ".bias")]
            nodes.append(helper.make_node("Transpose", [x], [pre + ".t_in"], name=pre + ".t_in", perm=[1, 0]))
            nodes.append(helper.make_node("Reshape", [pre + ".t_in", shape_const(f"shape.c{di}", [1, di, T_TOKENS, 1])],
                                          [pre + ".in4d"], name=pre + ".to4d"))
            nodes.append(helper.make_node("Conv", [pre + ".in4d", pre + ".weight", pre + ".bias"], [pre + ".out4d"],
                                          name=pre, kernel_shape=[3, 1], pads=[1, 0, 1, 0]))
            nodes.append(helper.make_node("Reshape", [pre + ".out4d", shape_const(f"shape.r{do}", [do, T_TOKENS])],
                                          [pre + ".out2d"], name=pre + ".to2d"))
            y = pre + ".out"
            nodes.append(helper.make_node("Transpose", [pre + ".out2d"], [y], name=pre + ".t_out", perm=[1, 0]))
            n_params += w.size + b.size
        act = f"layers.{i:04d}.act"
        nodes.append(helper.make_node("Tanh", [y], [act], name=f"layers.{i:04d}.tanh"))
        x = act
    graph = helper.make_graph(
        nodes, "quantlens_dash_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T_TOKENS, plan[0]["d_in"]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [T_TOKENS, plan[-1]["d_out"]])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="quantlens-bench-dash")
    model.ir_version = IR_VERSION
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    kinds = {k: sum(1 for p in plan if p["kind"] == k) for k in LAYER_KINDS}
    return {"n_layers": n_layers, "n_params": int(n_params), "kinds": kinds,
            "n_weight_tensors": n_layers, "n_bias_tensors": kinds["gemm"] + kinds["conv"],
            "bytes": path.stat().st_size}


class _Calib:
    def __init__(self, d0: int, seed: int, n: int = 2):
        rng = np.random.default_rng([seed, 77])
        self._data = [{"x": rng.standard_normal((T_TOKENS, d0), dtype=np.float32)} for _ in range(n)]
        self._it = iter(self._data)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._data)


def quantize_variant(kind: str, fp32_path: str, out_path: str, seed: int = 0) -> dict:
    """One ORT quantization (run in its own process by :func:`ensure_dash_models`)."""
    import logging

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    import tempfile

    logging.getLogger().setLevel(logging.ERROR)
    t0 = time.perf_counter()
    # ORT writes and deletes "<input>-inferred.onnx" beside its input: quantize a private copy
    # so that the variants can run side by side
    with tempfile.TemporaryDirectory(prefix="qldash.") as td:
        src = os.path.join(td, "fp32.onnx")
        shutil.copyfile(fp32_path, src)
        tmp_out = os.path.join(td, "out.onnx")
        if kind == "dyn":
            quantize_dynamic(src, tmp_out, weight_type=QuantType.QUInt8)
        else:
            qdq = kind == "qdq"
            quantize_static(src, tmp_out, _Calib(WIDTHS[2], seed),
                            quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator, per_channel=qdq,
                            weight_type=QuantType.QInt8 if qdq else QuantType.QUInt8,
                            activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax)
        shutil.move(tmp_out, out_path)
    return {"seconds": time.perf_counter() - t0, "bytes": os.path.getsize(out_path)}


def _write_fp32_entry(path: str, n_layers: int, seed: int) -> dict:
    return write_fp32_chain(Path(path), n_layers, seed)


def dash_set_dir(out=None, n_layers: int = 2000, seed: int = 0) -> Path:
    base = Path(out or DEFAULT_OUT)
    return base / (DASH_SET if (n_layers, seed) == (2000, 0) else f"dash{n_layers}_s{seed}")


def ensure_dash_models(folder: Path, n_layers: int = 2000, seed: int = 0, force: bool = False,
                       log=print) -> dict:
    """Generate (or reuse) ``folder/{fp32,qdq_*,qop_*,dyn_*}.onnx``; returns the manifest.

    The folder holds only the four models (it is the dashboard's model folder); the
    manifest is written last and marks the set complete."""
    import fcntl

    from . import measure

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        man_path = folder / "manifest.json"
        if man_path.exists() and not force:
            man = json.loads(man_path.read_text())
            if (man.get("n_layers") == n_layers and man.get("seed") == seed
                    and all((folder / f).exists() for f in [FP32_FILE, *VARIANT_FILES.values()])):
                return man
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        log(f"[dash-generate] {n_layers} layers (seed {seed}) -> {folder}")
        man = {"n_layers": n_layers, "seed": seed, "steps": {}}
        r = measure.run_isolated("benchmarks.dashboard:_write_fp32_entry", str(folder / FP32_FILE), n_layers, seed,
                                 return_result=True, timeout=1800)
        if not r.get("ok"):
            raise RuntimeError(f"fp32 generation failed: {r.get('error')}\n{r.get('traceback', '')}")
        man.update(r["result"])
        man["steps"]["fp32"] = {"wall_s": r["wall_s"]}
        log(f"[dash-generate]   fp32: {r['wall_s']:.1f} s, {r['result']['n_params']:,} params")
        # ORT's quantizer is quadratic in the node / initializer count (linear name look-ups per
        # tensor): ~20-30 min per static variant at 2,000 layers on a loaded 2-core box.  The three
        # variants are independent: run them side by side, each in its own process.
        from concurrent.futures import ThreadPoolExecutor

        def one(item):
            kind, fname = item
            return kind, measure.run_isolated("benchmarks.dashboard:quantize_variant", kind, str(folder / FP32_FILE),
                                              str(folder / fname), seed, return_result=True, timeout=4 * 3600)

        with ThreadPoolExecutor(len(VARIANT_FILES)) as ex:
            for kind, r in ex.map(one, VARIANT_FILES.items()):
                if not r.get("ok"):
                    raise RuntimeError(f"{kind} quantization failed: {r.get('error')}\n{r.get('traceback', '')}")
                man["steps"][kind] = {"wall_s": r["wall_s"], "peak_rss_growth": r["peak_rss_growth"]}
                log(f"[dash-generate]   {kind}: {r['wall_s']:.1f} s")
        for p in folder.iterdir():  # ORT side files (e.g. *-inferred.onnx) must not reach the model picker
            if p.name not in {FP32_FILE, *VARIANT_FILES.values()}:
                p.unlink() if p.is_file() else shutil.rmtree(p)
        man["files"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
        man_path.write_text(json.dumps(man, indent=2))
        return man


def dash_paths(folder: Path) -> tuple[str, list[str]]:
    folder = Path(folder)
    return str(folder / FP32_FILE), [str(folder / f) for f in VARIANT_FILES.values()]


# ---------------------------------------------------------------------------
# 2. a minimal Dash renderer over Flask's test client
# ---------------------------------------------------------------------------


def _stringify_id(i) -> str:
    """Dash's ``stringifyId``: a dict id as sorted, compact JSON."""
    return i if isinstance(i, str) else json.dumps(i, sort_keys=True, separators=(",", ":"))


def _clean_prop(p: str) -> str:
    return p.split("@")[0]


def _is_component(x) -> bool:
    return isinstance(x, dict) and "type" in x and "namespace" in x and "props" in x


def _walk_components(x, out: list):
    """Every component (dict with type/namespace/props) inside ``x``."""
    if _is_component(x):
        out.append(x)
        for v in x["props"].values():
            _walk_components(v, out)
    elif isinstance(x, list):
        for v in x:
            _walk_components(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _walk_components(v, out)
    return out


def _gz(data: bytes) -> int:
    import gzip

    return len(gzip.compress(data, 6))


def _compact_len(v) -> int:
    return len(json.dumps(v, separators=(",", ":")))


def _arr(v):
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (plotly >= 6)."""
    import base64

    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            shape = v["shape"]
            a = a.reshape([int(s) for s in str(shape).split(",")] if isinstance(shape, str) else shape)
        return a.tolist()
    return list(v) if v is not None else []


class Callback:
    def __init__(self, dep: dict, name: str):
        self.dep = dep
        self.output = dep["output"]
        self.name = name
        self.multi = self.output.startswith("..")
        parts = self.output[2:-2].split("...") if self.multi else [self.output]
        self.outputs = []
        for p in parts:
            i, prop = p.rsplit(".", 1)
            self.outputs.append((i, prop))
        self.inputs = [(i["id"], i["property"]) for i in dep["inputs"]]
        self.state = [(i["id"], i["property"]) for i in dep["state"]]
        self.prevent_initial_call = bool(dep.get("prevent_initial_call"))
        self.background = dep.get("background")
        self.out_keys = {(i, _clean_prop(p)) for i, p in self.outputs}

    def has_input(self, idkey: str, prop: str) -> bool:
        for i, p in self.inputs:
            if p != prop:
                continue
            if i == idkey:
                return True
            if i.startswith("{") and idkey.startswith("{"):
                if _pattern_match(json.loads(i), json.loads(idkey)):
                    return True
        return False


def _pattern_match(pattern: dict, cid: dict) -> bool:
    if set(pattern) != set(cid):
        return False
    return all(isinstance(v, list) or cid[k] == v for k, v in pattern.items())


class MiniRenderer:
    """Does what dash-renderer does for this page, over ``app.server.test_client()``:
    fetches the page, the layout and the dependencies, keeps every component's props,
    fires the initial callbacks and the callbacks each prop change triggers (callbacks
    whose inputs are outputs of a pending callback wait for it, as in the renderer), posts
    exactly the JSON the browser posts to ``/_dash-update-component``, polls background
    callbacks, and applies each response.  Every request is timed and sized."""

    def __init__(self, app, page_query: str = "", poll_s: float = 0.05):
        self.app = app
        self.client = app.server.test_client()
        self.page_query = page_query
        self.poll_s = poll_s
        self.props: dict[str, dict] = {}
        self.children_ids: dict[tuple, set] = {}
        self.records: list[dict] = []
        self.phase = "load"
        self.interaction = None
        self.end_id = None
        self.bytes = {}
        self.last_body: dict[str, dict] = {}
        self.jobs: list[dict] = []
        self.removed_patterns: list[str] = []
        self.job_timeout = 900.0

    # --- page -----------------------------------------------------------------
    def _get(self, path):
        t0 = time.perf_counter()
        r = self.client.get(path)
        dt = time.perf_counter() - t0
        data = r.get_data()
        self.records.append({"cb": "GET " + path.split("?")[0], "s": dt, "bytes": len(data), "phase": self.phase,
                             "status": r.status_code, "interaction": None, "gz": _gz(data)})
        return r, data

    def load(self):
        import re

        r, html = self._get("/" + self.page_query)
        html = html.decode()
        m = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', html, re.S)
        cfg = json.loads(m.group(1)) if m else {}
        self.end_id = cfg.get("end_id")
        self.html = html
        _, layout = self._get("/_dash-layout")
        _, deps = self._get("/_dash-dependencies")
        self.layout = json.loads(layout)
        names = {k: getattr(v.get("callback"), "__name__", k) for k, v in self.app.callback_map.items()}
        # clientside callbacks (the range chart's scroll into view) run in the browser only
        self.callbacks = [Callback(d, names.get(d["output"], d["output"][:40])) for d in json.loads(deps)
                          if not d.get("clientside_function")]
        for comp in _walk_components(self.layout, []):
            self._register(comp, None)
        # dcc.Location sets its props on mount (pathname/search/href)
        for comp in _walk_components(self.layout, []):
            if comp["type"] == "Location":
                k = _stringify_id(comp["props"]["id"])
                self.props[k].update(pathname="/", search=self.page_query, hash="",
                                     href="http://localhost/" + self.page_query)
        initial = [cb for cb in self.callbacks if not cb.prevent_initial_call]
        self._run({cb.output: (cb, set(), frozenset()) for cb in initial})

    def _register(self, comp, parent):
        cid = comp["props"].get("id")
        if cid is not None:
            k = _stringify_id(cid)
            self.props[k] = {p: v for p, v in comp["props"].items()}
            self.props[k]["__type__"] = comp["type"]
            if parent is not None:
                self.children_ids.setdefault(parent, set()).add(k)

    # --- callbacks ---------------------------------------------------------------
    def _value_entry(self, idkey, prop):
        if idkey.startswith("{"):
            pat = json.loads(idkey)
            out = []
            for k in sorted(self.props):
                if k.startswith("{") and _pattern_match(pat, json.loads(k)):
                    e = {"id": json.loads(k), "property": prop}
                    if prop in self.props[k]:
                        e["value"] = self.props[k][prop]
                    out.append(e)
            return out
        e = {"id": idkey, "property": prop}
        if prop in self.props.get(idkey, {}):
            e["value"] = self.props[idkey][prop]
        return e

    def _body(self, cb: Callback, changed: set) -> dict:
        outs = [{"id": i, "property": p} for i, p in cb.outputs]
        changed_ids = sorted(changed)
        body = {"output": cb.output, "outputs": outs if cb.multi else outs[0],
                "inputs": [self._value_entry(i, p) for i, p in cb.inputs],
                "changedPropIds": changed_ids,
                "parsedChangedPropsIds": [json.loads(c.rsplit(".", 1)[0]) if c.startswith("{") else c
                                          for c in changed_ids]}
        if cb.state:
            body["state"] = [self._value_entry(i, p) for i, p in cb.state]
        return body

    def _post(self, cb: Callback, body: dict, query: dict | None = None, label=None):
        from urllib.parse import urlencode

        q = {"endId": self.end_id} if self.end_id else {}
        q.update(query or {})
        url = "/_dash-update-component" + ("?" + urlencode(q) if q else "")
        raw = json.dumps(body)
        t0 = time.perf_counter()
        r = self.client.post(url, data=raw, content_type="application/json")
        dt = time.perf_counter() - t0
        data = r.get_data()
        rec = {"cb": label or cb.name, "s": dt, "bytes": len(data), "req_bytes": len(raw), "phase": self.phase,
               "status": r.status_code, "interaction": self.interaction}
        if self.phase == "load":
            rec["gz"] = _gz(data)
        self.records.append(rec)
        if r.status_code >= 400:
            raise RuntimeError(f"{cb.name}: HTTP {r.status_code}: {data[:2000]!r}")
        if r.status_code == 200 and data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {}
            figs = {i: _compact_len(p["figure"]) for i, p in (parsed.get("response") or {}).items()
                    if isinstance(p, dict) and "figure" in p}
            if figs:
                rec["figs"] = figs
        rec["layer"] = ((self.props.get(SELECTION_ID) or {}).get("data") or {}).get("layer")
        prev = self.last_body.get(cb.name)
        if prev is None or dt > prev["s"]:
            self.last_body[cb.name] = {"s": dt, "body": body, "query": q}
        return r.status_code, (json.loads(data) if data and r.status_code == 200 else None), rec

    def _call(self, cb: Callback, changed: set) -> list[tuple[str, str]]:
        body = self._body(cb, changed)
        status, resp, rec = self._post(cb, body)
        if cb.background and resp is not None and "cacheKey" in resp and "response" not in resp:
            # the renderer polls with the signed handles, inputs and state nulled
            handles = {"cacheKey": resp["cacheKey"], "job": resp["job"]}
            poll_body = json.loads(json.dumps(body))
            for e in poll_body["inputs"] + poll_body.get("state", []):
                for x in (e if isinstance(e, list) else [e]):
                    x["value"] = None
            t0, n = time.perf_counter(), 0
            while True:
                time.sleep(self.poll_s)
                n += 1
                status, resp, _ = self._post(cb, poll_body, handles, label=cb.name + " (poll)")
                if status != 200 or (resp and "response" in resp):
                    break
                if time.perf_counter() - t0 > self.job_timeout:
                    raise RuntimeError(f"background callback {cb.name} did not finish in {self.job_timeout} s")
            self.jobs.append({"cb": cb.name, "phase": self.phase, "wall_s": time.perf_counter() - t0 + rec["s"],
                              "polls": n})
        return self._apply(resp) if status == 200 and resp else []

    def _apply(self, resp: dict) -> list[tuple[str, str]]:
        changed = []
        for section in ("response", "sideUpdate"):
            for idkey, props in (resp.get(section) or {}).items():
                for prop, val in props.items():
                    prop = _clean_prop(prop)
                    if is_patch(val):  # a dash.Patch answer: applied to the prop, as the renderer does
                        val = apply_patch(self.props.get(idkey, {}).get(prop), val)
                    self.props.setdefault(idkey, {})[prop] = val
                    changed.append((idkey, prop))
                    if prop == "children":
                        for old in self.children_ids.pop((idkey, prop), set()):
                            self.props.pop(old, None)
                            if old.startswith("{"):
                                self.removed_patterns.append(old)
                        for comp in _walk_components(val, []):
                            self._register(comp, (idkey, prop))
        return changed

    def _triggered_by(self, changes) -> dict:
        out = {}
        for idkey, prop in changes:
            for cb in self.callbacks:
                if cb.has_input(idkey, prop):
                    out.setdefault(cb.output, (cb, set()))[1].add(f"{idkey}.{prop}")
        return out

    def _run(self, pending: dict):
        """pending: output -> (callback, changedPropIds, predecessors)."""
        guard = 0
        while pending:
            guard += 1
            if guard > 200:
                raise RuntimeError("callback chain did not settle")
            outs_of_pending = {}
            for key, (cb, _, _) in pending.items():
                for o in cb.out_keys:
                    outs_of_pending.setdefault(o, set()).add(key)
            ready = [key for key, (cb, _, _) in pending.items()
                     if not any(outs_of_pending.get((i, p), set()) - {key} for i, p in cb.inputs)]
            if not ready:
                ready = list(pending)
            nxt = {}
            for key in ready:
                cb, changed, preds = pending.pop(key)
                changes = self._call(cb, changed)
                # wildcard (ALL) inputs whose components went away: the renderer calls those
                # callbacks once more with no changed props, even with prevent_initial_call
                removed, self.removed_patterns = self.removed_patterns, []
                for cb2 in self.callbacks:
                    if any(i.startswith("{") and any(_pattern_match(json.loads(i), json.loads(r)) for r in removed)
                           for i, _ in cb2.inputs) and cb2.output not in pending and cb2.output not in nxt:
                        nxt[cb2.output] = (cb2, set(), frozenset(preds | {cb.output}))
                # callbacks whose children lost pattern-matching components fire once more (renderer)
                for out, (cb2, ch2) in self._triggered_by(changes).items():
                    if cb2.output in preds or cb2 is cb:
                        continue  # circular: the renderer drops it
                    ent = nxt.get(out) or pending.get(out)
                    if ent is None:
                        nxt[out] = (cb2, set(ch2), frozenset(preds | {cb.output}))
                    else:
                        ent[1].update(ch2)
            for out, ent in nxt.items():
                if out in pending:
                    pending[out][1].update(ent[1])
                else:
                    pending[out] = ent

    def set_props(self, changes: list[tuple[str, str, object]]):
        """A user action: set props (as the component's setProps does) and run what it triggers."""
        for idkey, prop, val in changes:
            self.props.setdefault(idkey, {})[prop] = val
        trig = self._triggered_by([(i, p) for i, p, _ in changes])
        self._run({out: (cb, ch, frozenset()) for out, (cb, ch) in trig.items()})


# ---------------------------------------------------------------------------
# seeded user actions
# ---------------------------------------------------------------------------

# (kind, weight, family): family "selection", "filter", "table", "view"
ACTIONS = [
    ("click_range", 14, "selection"), ("click_sqnr", 10, "selection"), ("table_cell", 8, "selection"),
    ("box_range", 5, "selection"), ("box_sqnr", 5, "selection"), ("next_step", 4, "selection"),
    ("clear_selection", 4, "selection"),
    ("filter_op", 5, "filter"), ("filter_role", 4, "filter"), ("filter_variant", 4, "filter"),
    ("filter_search", 6, "filter"), ("filter_sqnr", 6, "filter"), ("reset_filters", 3, "filter"),
    ("table_page", 5, "table"), ("table_sort", 4, "table"), ("table_filter", 4, "table"),
    ("tab", 5, "view"), ("log_switch", 3, "view"),
]
FAMILY = {k: f for k, _, f in ACTIONS}
SEARCHES = ["conv", "gemm", "matmul", "bias", "weight", "layers.01", "layers.1", "00", "7.", "tanh", "xyz-none"]
TABLE_QUERIES = ["", "{sqnr_db} s< 35", '{variant} icontains "qdq"', "{role} s= weight",
                 "{granularity} s= per_tensor && {sqnr_db} s< 40", "{clipped_frac} s> 0", "{fp32_name} icontains conv"]
SORT_COLS = ["sqnr_db", "mse", "fp32_name", "variant", "scale_max", "clipped_frac", "levels_used"]


class UserModel:
    """Picks the next action from what is on the (emulated) page, seeded."""

    def __init__(self, ids_mod, seed: int):
        self.ids = ids_mod
        self.rng = np.random.default_rng([seed, 4242])
        self.kinds = [k for k, _, _ in ACTIONS]
        w = np.array([w for _, w, _ in ACTIONS], float)
        self.p = w / w.sum()
        self.clicks = 0

    def _fig(self, r, gid):
        return (r.props.get(gid) or {}).get("figure") or {}

    def _points(self, fig):
        """(trace index, point index, trace) of every point that names a layer."""
        out = []
        for ti, tr in enumerate(fig.get("data") or []):
            cd = tr.get("customdata")
            if cd is None:
                continue
            n = len(_arr(cd)) if isinstance(cd, dict) else len(cd)
            out.append((ti, n, tr))
        return out

    def _point(self, ti, i, tr, y_is_key: bool):
        cd = _arr(tr["customdata"]) if isinstance(tr["customdata"], dict) else tr["customdata"]
        xs, ys = _arr(tr.get("x")), _arr(tr.get("y"))
        p = {"curveNumber": ti, "pointNumber": i, "pointIndex": i,
             "x": xs[i] if i < len(xs) else None, "y": ys[i] if i < len(ys) else None, "customdata": cd[i]}
        if "base" in tr:
            b = _arr(tr["base"]) if isinstance(tr["base"], (dict, list)) else [tr["base"]] * (i + 1)
            p["base"] = b[i] if i < len(b) else None
        if y_is_key:
            p["label"], p["value"] = p["y"], p["x"]
        else:
            p["label"], p["value"] = p["x"], p["y"]
        p["bbox"] = {"x0": 100.0, "x1": 110.0, "y0": 200.0, "y1": 210.0}
        return p

    def _click(self, r, gid, y_is_key):
        pts = [(ti, n, tr) for ti, n, tr in self._points(self._fig(r, gid)) if n]
        if not pts:
            return None
        ti, n, tr = pts[int(self.rng.integers(len(pts)))]
        i = int(self.rng.integers(n))
        return [(gid, "clickData", {"points": [self._point(ti, i, tr, y_is_key)]})]

    def _box(self, r, gid, y_is_key):
        fig = self._fig(r, gid)
        pts = [(ti, n, tr) for ti, n, tr in self._points(fig) if n]
        if not pts:
            return None
        if y_is_key:  # range chart: a box in one subplot column (its traces share an x axis)
            axes = sorted({tr.get("xaxis", "x") for _, _, tr in pts})
            ax = axes[int(self.rng.integers(len(axes)))]
            pts = [p for p in pts if p[2].get("xaxis", "x") == ax]
        keys = []
        for _, _, tr in pts:
            for k in (_arr(tr["y"]) if y_is_key else _arr(tr["x"])):
                if k not in keys:
                    keys.append(k)
        if not keys:
            return None
        size = int(min(len(keys), max(2, self.rng.choice([5, 20, 60, 150, 400]))))
        start = int(self.rng.integers(0, max(1, len(keys) - size + 1)))
        chosen = set(keys[start:start + size])
        points = []
        for ti, n, tr in pts:
            ks = _arr(tr["y"]) if y_is_key else _arr(tr["x"])
            for i, k in enumerate(ks):
                if k in chosen:
                    points.append(self._point(ti, i, tr, y_is_key))
        rng_key = {"y" if y_is_key else "x": [start - 0.5, start + size - 0.5],
                   "x" if y_is_key else "y": [-1.0, 1.0]}
        return [(gid, "selectedData", {"points": points, "range": rng_key})]

    def next(self, r) -> tuple[str, list]:
        ids = self.ids
        for _ in range(50):
            kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.p))]
            ch = self._make(kind, r, ids)
            if ch:
                return kind, ch
        return "clear_selection", self._make("clear_selection", r, ids)

    def _n(self, r, cid, prop="n_clicks"):
        return ((r.props.get(cid) or {}).get(prop) or 0) + 1

    def _subset(self, options, kmax=2):
        vals = [o["value"] if isinstance(o, dict) else o for o in (options or [])]
        if not vals or self.rng.random() < 0.4:
            return []
        k = int(self.rng.integers(1, min(kmax, len(vals)) + 1))
        return [vals[i] for i in sorted(self.rng.choice(len(vals), k, replace=False))]

    def _make(self, kind, r, ids):
        P = r.props
        if kind == "click_range":
            return self._click(r, ids.RANGE_CHART, True)
        if kind == "click_sqnr":
            return self._click(r, ids.SQNR_CHART, False)
        if kind == "box_range":
            return self._box(r, ids.RANGE_CHART, True)
        if kind == "box_sqnr":
            return self._box(r, ids.SQNR_CHART, False)
        if kind == "table_cell":
            data = (P.get(ids.LAYER_TABLE) or {}).get("data") or []
            if not data:
                return None
            row = int(self.rng.integers(len(data)))
            col = ["variant", "fp32_name", "sqnr_db", "scale_min"][int(self.rng.integers(4))]
            return [(ids.LAYER_TABLE, "active_cell", {"row": row, "column": 1, "column_id": col}),
                    ]
        if kind == "next_step":
            keys = [k for k in P if k.startswith("{") and '"next-step-button"' in k]
            if not keys:
                return None
            k = keys[int(self.rng.integers(len(keys)))]
            return [(k, "n_clicks", self._n(r, k))]
        if kind == "clear_selection":
            return [(ids.CLEAR_SELECTION, "n_clicks", self._n(r, ids.CLEAR_SELECTION))]
        if kind == "filter_op":
            return [(ids.OP_FILTER, "value", self._subset(P.get(ids.OP_FILTER, {}).get("options")))]
        if kind == "filter_role":
            return [(ids.ROLE_FILTER, "value", self._subset(P.get(ids.ROLE_FILTER, {}).get("options")))]
        if kind == "filter_variant":
            return [(ids.VARIANT_FILTER, "value", self._subset(P.get(ids.VARIANT_FILTER, {}).get("options")))]
        if kind == "filter_search":
            v = "" if self.rng.random() < 0.4 else SEARCHES[int(self.rng.integers(len(SEARCHES)))]
            return [(ids.SEARCH_FILTER, "value", v)]
        if kind == "filter_sqnr":
            v = None if self.rng.random() < 0.4 else float(self.rng.choice([25, 30, 35, 38.5, 40, 45, 60]))
            return [(ids.SQNR_FILTER, "value", v)]
        if kind == "reset_filters":
            return [(ids.RESET_FILTERS, "n_clicks", self._n(r, ids.RESET_FILTERS))]
        if kind == "table_page":
            pc = int((P.get(ids.LAYER_TABLE) or {}).get("page_count") or 1)
            return [(ids.LAYER_TABLE, "page_current", int(self.rng.integers(pc)))]
        if kind == "table_sort":
            if self.rng.random() < 0.25:
                return [(ids.LAYER_TABLE, "sort_by", [])]
            col = SORT_COLS[int(self.rng.integers(len(SORT_COLS)))]
            direction = ["asc", "desc"][int(self.rng.integers(2))]
            return [(ids.LAYER_TABLE, "sort_by", [{"column_id": col, "direction": direction}])]
        if kind == "table_filter":
            return [(ids.LAYER_TABLE, "filter_query", TABLE_QUERIES[int(self.rng.integers(len(TABLE_QUERIES)))])]
        if kind == "tab":
            return [(ids.TABS, "active_tab", ids.TAB_IDS[int(self.rng.integers(len(ids.TAB_IDS)))])]
        if kind == "log_switch":
            return [(ids.LOG_SWITCH, "value", not bool((P.get(ids.LOG_SWITCH) or {}).get("value")))]
        raise ValueError(kind)


# ---------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------

CALLBACK_P95_TARGET_S = 0.050
INITIAL_PAGE_TARGET_BYTES = 1.5e6
HIST_FIGURE_TARGET_BYTES = 100e3
REOPEN_TARGET_S = 0.5
# lazily loaded JS chunks this page needs (Graph, Dropdown, DataTable); the rest are in the HTML
ASYNC_ASSETS = ["/_dash-component-suites/plotly/package_data/plotly.min.js",
                "/_dash-component-suites/dash/dcc/async-graph.js",
                "/_dash-component-suites/dash/dcc/async-dropdown.js",
                "/_dash-component-suites/dash/dash_table/async-table.js"]
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "dashboard.json"
DEFAULT_CACHE = DEFAULT_OUT / ".qlcache-dashboard"
NOT_JUDGED = {"run_analysis", "run_analysis (poll)", "download_table", "download_nodes_to_exclude"}


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs, float), q)) if len(xs) else None


def reopen_entry(fp32: str, variants: list) -> dict:
    """``analyze(cache=True)`` in this (fresh) process; run through measure.run_isolated."""
    import analysis

    a = analysis.analyze(fp32, variants, cache=True)
    return {"layer_rows": len(a.layers), "channel_rows": len(a.channels), "histogram_rows": len(a.histograms)}


def _top_functions(prof, n=14, roots=("analysis/", "dashapp/", "plotly/", "pandas/", "numpy/", "json/", "dash/")):
    import pstats

    st = pstats.Stats(prof).stats
    rows = []
    for (fn, line, func), (cc, nc, tt, ct, _) in st.items():
        rows.append({"func": f"{_short(fn)}:{line}({func})", "ncalls": nc, "tottime": tt, "cumtime": ct})
    by_tt = sorted(rows, key=lambda r: -r["tottime"])[:n]
    ours = [r for r in rows if any(x in r["func"] for x in ("analysis/", "dashapp/"))]
    by_ct = sorted(ours, key=lambda r: -r["cumtime"])[:n]
    return {"by_tottime": by_tt, "by_cumtime_analysis_dashapp": by_ct}


def _short(fn: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in fn:
            return fn.split(marker, 1)[1]
    return fn


def reopen_profile_entry(fp32: str, variants: list) -> dict:
    import cProfile

    import analysis

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    analysis.analyze(fp32, variants, cache=True)
    prof.disable()
    out = _top_functions(prof)
    out["seconds_under_profile"] = time.perf_counter() - t0
    return out


def measure_reopen(label: str, fp32: str, variants: list, cache_dir: Path, repeat: int, log=print,
                   profile: bool = True) -> dict:
    from . import measure

    env = {"QUANTLENS_CACHE_DIR": str(cache_dir)}
    first = measure.run_isolated("benchmarks.dashboard:reopen_entry", fp32, variants, return_result=True,
                                 warm_imports=("analysis",), env=env, timeout=3600)
    if not first.get("ok"):
        log(f"!!! [{label}] analyze failed: {first.get('error')}")
        return {"error": first.get("error")}
    hits = []
    for _ in range(repeat):
        r = measure.run_isolated("benchmarks.dashboard:reopen_entry", fp32, variants, return_result=True,
                                 warm_imports=("analysis",), env=env, timeout=600)
        if r.get("ok"):
            hits.append({"wall_s": r["wall_s"], "total_s": r["total_s"], "peak_rss_growth": r["peak_rss_growth"]})
    res = {"first_call_s": first["wall_s"], "tables": first.get("result"),
           "hit_s": float(np.median([h["wall_s"] for h in hits])) if hits else None,
           "hit_all_s": [h["wall_s"] for h in hits],
           "process_total_s": float(np.median([h["total_s"] for h in hits])) if hits else None,
           "peak_rss_growth": max((h["peak_rss_growth"] for h in hits), default=None)}
    log(f"[reopen {label}] first call {first['wall_s']:.2f} s; cache hit in a fresh process: median "
        f"{res['hit_s']:.3f} s (runs {', '.join(f'{h:.3f}' for h in res['hit_all_s'])}); process incl. imports "
        f"{res['process_total_s']:.2f} s; tables {first.get('result')}")
    if profile and res["hit_s"] is not None and res["hit_s"] > REOPEN_TARGET_S:
        p = measure.run_isolated("benchmarks.dashboard:reopen_profile_entry", fp32, variants, return_result=True,
                                 warm_imports=("analysis",), env=env, timeout=600)
        if p.get("ok"):
            res["profile"] = p["result"]
    return res


def assets_bytes(r: MiniRenderer) -> dict:
    import gzip
    import re

    paths = re.findall(r'<script[^>]*src="([^"]+)"', r.html) + re.findall(r'<link[^>]*href="([^"]+)"', r.html)
    out = {}
    for p in paths + ASYNC_ASSETS:
        resp = r.client.get(p)
        data = resp.get_data()
        out[p.split("?")[0]] = {"bytes": len(data), "gzip": len(gzip.compress(data, 6)), "status": resp.status_code}
    return out


def profile_callback(app, saved: dict, n: int = 3) -> dict:
    """Re-post the slowest recorded body of a callback ``n`` times under cProfile."""
    import cProfile
    from urllib.parse import urlencode

    client = app.server.test_client()
    url = "/_dash-update-component" + ("?" + urlencode(saved["query"]) if saved.get("query") else "")
    raw = json.dumps(saved["body"])
    prof = cProfile.Profile()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        prof.enable()
        client.post(url, data=raw, content_type="application/json")
        prof.disable()
        times.append(time.perf_counter() - t0)
    out = _top_functions(prof)
    out["seconds_under_profile"] = times
    out["n"] = n
    out["recorded_s"] = saved["s"]
    return out


def _callback_stats(records, phase="interact") -> dict:
    per = {}
    for rec in records:
        if rec["phase"] != phase or rec["cb"].startswith("GET "):
            continue
        per.setdefault(rec["cb"], []).append(rec["s"])
    return {k: {"n": len(v), "p50_s": _pct(v, 50), "p95_s": _pct(v, 95), "max_s": max(v)} for k, v in per.items()}


def run_dashboard(folder: Path, cache_dir: Path, *, interactions: int, repeat: int, seed: int, log=print,
                  profile: bool = True, max_minutes: float | None = None) -> dict:
    """Parts 2 and 3: callback latency and bytes on the 2,000-layer set."""
    from . import measure

    os.environ["QUANTLENS_CACHE_DIR"] = str(cache_dir)  # before dashapp is imported
    fp32, variants = dash_paths(folder)
    res = {"folder": str(folder), "cache_dir": str(cache_dir), "interactions": interactions, "repeat": repeat,
           "seed": seed, "loadavg_at_start": os.getloadavg()}
    # analyse first (own process), so the app finds the result in the disk cache
    pre = measure.run_isolated("benchmarks.dashboard:reopen_entry", fp32, variants, return_result=True,
                               warm_imports=("analysis",), env={"QUANTLENS_CACHE_DIR": str(cache_dir)}, timeout=7200)
    if not pre.get("ok"):
        raise RuntimeError(f"analysis of the dashboard set failed: {pre.get('error')}\n{pre.get('traceback')}")
    res["pre_analysis_s"] = pre["wall_s"]
    res["tables"] = pre["result"]
    log(f"[dash] analysis of {folder.name} (cache filled or hit): {pre['wall_s']:.1f} s; tables {pre['result']}")

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from dashapp import ids
    from dashapp.app import create_app

    global SELECTION_ID
    SELECTION_ID = ids.SELECTION_STORE
    app = create_app(model_dir=folder)
    # first page load in a fresh app: the job loads the result from disk in its own process,
    # then the first view callback loads it again in the web process
    first = MiniRenderer(app)
    t0 = time.perf_counter()
    first.load()
    res["first_load"] = {"wall_s": time.perf_counter() - t0, "jobs": first.jobs,
                         "requests": [{k: rec.get(k) for k in ("cb", "s", "bytes")} for rec in first.records]}
    log(f"[dash] first page load (fresh app, result loaded from the disk cache): "
        f"{res['first_load']['wall_s']:.1f} s wall")
    load_bytes = sum(rec["bytes"] for rec in first.records)
    res["initial_page"] = {
        "bytes": load_bytes,
        "gzip_bytes": sum(rec.get("gz", 0) for rec in first.records),
        "parts": {}, "n_requests": len(first.records)}
    for rec in first.records:
        res["initial_page"]["parts"][rec["cb"]] = res["initial_page"]["parts"].get(rec["cb"], 0) + rec["bytes"]
    res["assets"] = assets_bytes(first)
    res["assets_total"] = {"bytes": sum(a["bytes"] for a in res["assets"].values()),
                           "gzip": sum(a["gzip"] for a in res["assets"].values())}

    runs = []
    all_records = []
    for rep in range(repeat):
        r = MiniRenderer(app)
        r.load()
        r.phase = "interact"
        um = UserModel(ids, seed)
        per_int = []
        t_run = time.perf_counter()
        budget = max_minutes * 60 / repeat if max_minutes else None
        for n in range(interactions):
            if budget is not None and time.perf_counter() - t_run > budget:
                log(f"[dash] repeat {rep + 1}: time budget reached after {n} interactions")
                break
            kind, ch = um.next(r)
            r.interaction = n
            t0 = time.perf_counter()
            r.set_props(ch)
            recs = [x for x in r.records if x["interaction"] == n]
            per_int.append({"kind": kind, "family": FAMILY[kind], "wall_s": time.perf_counter() - t0,
                            "server_s": sum(x["s"] for x in recs), "n_requests": len(recs),
                            "max_request_s": max((x["s"] for x in recs), default=0.0),
                            "bytes": sum(x["bytes"] for x in recs)})
            if (n + 1) % 25 == 0:
                log(f"[dash] repeat {rep + 1}/{repeat}: {n + 1}/{interactions} interactions, "
                    f"{time.perf_counter() - t_run:.0f} s, load average {os.getloadavg()[0]:.1f}")
        stats = _callback_stats(r.records)
        runs.append({"callbacks": stats, "interactions": per_int, "n_interactions": len(per_int),
                     "seconds": time.perf_counter() - t_run, "load_records": sum(
            1 for x in r.records if x["phase"] == "load")})
        all_records += [x for x in r.records if x["phase"] == "interact"]
        if rep == 0:
            res["_saved_bodies"] = r.last_body
        else:
            for k, v in r.last_body.items():
                if k not in res["_saved_bodies"] or v["s"] > res["_saved_bodies"][k]["s"]:
                    res["_saved_bodies"][k] = v
    res["loadavg_at_end"] = os.getloadavg()
    res["interactions_done"] = [run["n_interactions"] for run in runs]
    res["interaction_run_seconds"] = [run["seconds"] for run in runs]
    res["actions"] = {k: sum(1 for i in runs[0]["interactions"] if i["kind"] == k) for k in FAMILY}

    # per callback: median over repeats of p50 / p95 (and the pooled values)
    names = sorted({k for run in runs for k in run["callbacks"]})
    cbs = {}
    for k in names:
        vals = [run["callbacks"][k] for run in runs if k in run["callbacks"]]
        pooled = [x["s"] for x in all_records if x["cb"] == k]
        cbs[k] = {"n_per_run": int(np.median([v["n"] for v in vals])),
                  "p50_s": float(np.median([v["p50_s"] for v in vals])),
                  "p95_s": float(np.median([v["p95_s"] for v in vals])),
                  "p95_runs_s": [v["p95_s"] for v in vals],
                  "max_s": max(v["max_s"] for v in vals),
                  "pooled_p95_s": _pct(pooled, 95)}
    res["callbacks"] = cbs
    fams = {}
    for fam in sorted(set(FAMILY.values())):
        per_run = [[i for i in run["interactions"] if i["family"] == fam] for run in runs]
        if not any(per_run):
            continue
        fams[fam] = {"n_per_run": len(per_run[0]),
                     "server_p50_s": float(np.median([_pct([i["server_s"] for i in pr], 50) for pr in per_run if pr])),
                     "server_p95_s": float(np.median([_pct([i["server_s"] for i in pr], 95) for pr in per_run if pr])),
                     "slowest_request_p95_s": float(np.median([_pct([i["max_request_s"] for i in pr], 95)
                                                              for pr in per_run if pr])),
                     "bytes_p50": float(np.median([_pct([i["bytes"] for i in pr], 50) for pr in per_run if pr]))}
    allint = [[i for i in run["interactions"]] for run in runs]
    fams["all"] = {"n_per_run": len(allint[0]),
                   "server_p50_s": float(np.median([_pct([i["server_s"] for i in pr], 50) for pr in allint])),
                   "server_p95_s": float(np.median([_pct([i["server_s"] for i in pr], 95) for pr in allint])),
                   "slowest_request_p95_s": float(np.median([_pct([i["max_request_s"] for i in pr], 95)
                                                            for pr in allint])),
                   "bytes_p50": float(np.median([_pct([i["bytes"] for i in pr], 50) for pr in allint]))}
    res["interaction_families"] = fams
    judged = [x["s"] for x in all_records if x["cb"] not in NOT_JUDGED]
    res["overall"] = {"p50_s": _pct(judged, 50), "p95_s": _pct(judged, 95), "n": len(judged)}

    # figure sizes
    figs = {}
    for rec in first.records + all_records:
        for gid, size in (rec.get("figs") or {}).items():
            with_layer = rec.get("layer") is not None
            figs.setdefault(gid, {"all": [], "with_layer": []})["all"].append(size)
            if with_layer:
                figs[gid]["with_layer"].append(size)
    res["figures"] = {gid: {"max": max(v["all"]), "p50": _pct(v["all"], 50),
                            "max_with_layer": max(v["with_layer"]) if v["with_layer"] else None,
                            "p50_with_layer": _pct(v["with_layer"], 50) if v["with_layer"] else None,
                            "n": len(v["all"])} for gid, v in figs.items()}
    unfiltered = [rec for rec in first.records if rec.get("figs")]
    res["figures_initial"] = {gid: size for rec in unfiltered for gid, size in rec["figs"].items()}

    # profile what misses the latency target
    if profile:
        res["profiles"] = {}
        for k, v in cbs.items():
            if k in NOT_JUDGED or v["p95_s"] <= CALLBACK_P95_TARGET_S:
                continue
            saved = res["_saved_bodies"].get(k)
            if saved:
                log(f"[dash] profiling {k} (slowest recorded request {saved['s'] * 1000:.0f} ms)")
                res["profiles"][k] = profile_callback(app, saved, n=3 if saved["s"] < 5 else 1)
    res["slowest_bodies"] = {k: {"s": v["s"], "body_bytes": len(json.dumps(v["body"]))}
                             for k, v in res.pop("_saved_bodies").items()}
    return res


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------


def _ms(s):
    return "n/a" if s is None else f"{s * 1000:.1f} ms"


def _kb(b):
    return "n/a" if b is None else (f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.1f} KB")


def print_table(res: dict, log=print) -> list:
    rows = []  # (metric, value text, target text, verdict)

    def judge(ok):
        return "PASS" if ok else "FAIL"

    d = res.get("dashboard")
    if d:
        for k, v in sorted(d["callbacks"].items(), key=lambda kv: -kv[1]["p95_s"]):
            judged = k not in NOT_JUDGED
            rows.append((f"callback {k}: p50 / p95 (n={v['n_per_run']}/run)",
                         f"{_ms(v['p50_s'])} / {_ms(v['p95_s'])}", "p95 <= 50 ms" if judged else "-",
                         judge(v["p95_s"] <= CALLBACK_P95_TARGET_S) if judged else "info"))
        o = d["overall"]
        rows.append(("all judged callbacks: p50 / p95", f"{_ms(o['p50_s'])} / {_ms(o['p95_s'])}", "p95 <= 50 ms",
                     judge(o["p95_s"] <= CALLBACK_P95_TARGET_S)))
        for fam, v in d["interaction_families"].items():
            rows.append((f"interaction '{fam}': server time summed p50 / p95",
                         f"{_ms(v['server_p50_s'])} / {_ms(v['server_p95_s'])}", "-", "info"))
        ip = d["initial_page"]
        rows.append(("initial page (/, layout, deps, initial callbacks)", _kb(ip["bytes"]), "<= 1.5 MB",
                     judge(ip["bytes"] <= INITIAL_PAGE_TARGET_BYTES)))
        rows.append(("initial page if gzip-compressed (not served so)", _kb(ip.get("gzip_bytes")), "-", "info"))
        rows.append(("JS/CSS assets (raw / gzip)", f"{_kb(d['assets_total']['bytes'])} / "
                     f"{_kb(d['assets_total']['gzip'])}", "-", "info"))
        figs = d["figures"]
        vh = figs.get("value-hist-graph", {})
        rows.append(("value histogram figure, one layer: p50 / max", f"{_kb(vh.get('p50_with_layer'))} / "
                     f"{_kb(vh.get('max_with_layer'))}", "<= 100 KB",
                     judge((vh.get("max_with_layer") or 0) <= HIST_FIGURE_TARGET_BYTES)))
        for gid, name in (("code-hist-graph", "code histogram figure"),
                          ("channel-chart-graph", "channel chart figure")):
            f = figs.get(gid, {})
            rows.append((f"{name}, one layer: p50 / max", f"{_kb(f.get('p50_with_layer'))} / "
                         f"{_kb(f.get('max_with_layer'))}", "-", "info"))
        for gid, name in (("layer-range-chart", "range chart figure"), ("layer-sqnr-chart", "SQNR chart figure")):
            rows.append((f"{name}: unfiltered / max", f"{_kb(d['figures_initial'].get(gid))} / "
                         f"{_kb(figs.get(gid, {}).get('max'))}", "-", "info"))
        rows.append(("first page load of a fresh app (wall, cache hit)", f"{d['first_load']['wall_s']:.2f} s", "-",
                     "info"))
    for label, v in (res.get("reopen") or {}).items():
        if "hit_s" in v and v["hit_s"] is not None:
            rows.append((f"reopen {label}: analyze cache hit, fresh process", f"{v['hit_s']:.3f} s", "<= 0.5 s",
                         judge(v["hit_s"] <= REOPEN_TARGET_S)))
        else:
            rows.append((f"reopen {label}", "error", "<= 0.5 s", "n/a"))
    w = max([len(r[0]) for r in rows] + [40])
    log("\n" + "=" * (w + 44))
    log(f"{'metric':<{w}} {'value':>22} {'target':>13}  result")
    log("-" * (w + 44))
    for m, v, t, verdict in rows:
        log(f"{m:<{w}} {v:>22} {t:>13}  {verdict}")
    log("=" * (w + 44))
    if d and d.get("profiles"):
        log("\nWhere the slow callbacks spend their time (cProfile of the slowest recorded request re-posted):")
        for k, p in d["profiles"].items():
            n = p.get("n", 3)
            log(f"\n  {k}: {', '.join(f'{t * 1000:.0f}' for t in p['seconds_under_profile'])} ms under profile")
            for r in p["by_cumtime_analysis_dashapp"][:8]:
                log(f"    cum {r['cumtime'] / n * 1000:8.1f} ms/call  {r['func']}")
            for r in p["by_tottime"][:5]:
                log(f"    self {r['tottime'] / n * 1000:7.1f} ms/call  {r['func']}")
    for label, v in (res.get("reopen") or {}).items():
        if v.get("profile"):
            log(f"\n  reopen {label} (cache hit) under cProfile: {v['profile']['seconds_under_profile']:.2f} s")
            for r in v["profile"]["by_cumtime_analysis_dashapp"][:8]:
                log(f"    cum {r['cumtime'] * 1000:8.1f} ms  {r['func']}")
            for r in v["profile"]["by_tottime"][:5]:
                log(f"    self {r['tottime'] * 1000:7.1f} ms  {r['func']}")
    return rows


def main(argv=None) -> int:
    import argparse

    from .generate import model_paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=2000, help="layers of the dashboard model set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=str(DEFAULT_OUT), help="model cache folder")
    ap.add_argument("--cache-dir", default=None, help=f"QUANTLENS_CACHE_DIR to use (default {DEFAULT_CACHE})")
    ap.add_argument("--interactions", type=int, default=300, help="user actions per repeat")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the interaction sequence (medians reported)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="time budget for all interaction repeats (each stops early when its share is spent)")
    ap.add_argument("--reopen-sizes", default="50M,300M,1B",
                    help="benchmark sizes in --models whose cache-hit reopen is timed (those present)")
    ap.add_argument("--reopen-repeat", type=int, default=3)
    ap.add_argument("--no-reopen", dest="reopen", action="store_false")
    ap.add_argument("--no-dashboard", dest="dashboard", action="store_false", help="only the reopen part")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--no-save", dest="save", action="store_false")
    ap.add_argument("--results", default=str(RESULTS_PATH))
    args = ap.parse_args(argv)

    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(args.models) / ".qlcache-dashboard"
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = dash_set_dir(args.models, args.layers, args.seed)
    res = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": {"cpus": os.cpu_count()},
           "loadavg_at_start": os.getloadavg(), "cache_dir": str(cache_dir)}
    man = ensure_dash_models(folder, args.layers, args.seed)
    res["model_set"] = {k: man.get(k) for k in ("n_layers", "n_params", "kinds", "n_weight_tensors",
                                                "n_bias_tensors", "files", "steps")}
    print(f"[dash] model set {folder}: {man['n_layers']} layers, {man['n_params']:,} params, {man['kinds']}")
    if args.dashboard:
        res["dashboard"] = run_dashboard(folder, cache_dir, interactions=args.interactions, repeat=args.repeat,
                                         seed=args.seed, profile=args.profile, max_minutes=args.max_minutes)
    if args.reopen:
        res["reopen"] = {}
        fp32, variants = dash_paths(folder)
        res["reopen"][f"dash{args.layers}"] = measure_reopen(f"dash{args.layers}", fp32, variants, cache_dir,
                                                             args.reopen_repeat, profile=args.profile)
        for size in [s.strip() for s in args.reopen_sizes.split(",") if s.strip()]:
            p = model_paths(size, args.seed, args.models)
            if not all(Path(p[k]).exists() for k in ("fp32", "qdq", "dyn")):
                print(f"[reopen] {size}: no model set in {p['dir']} (generate it with python -m benchmarks.generate)")
                continue
            res["reopen"][size] = measure_reopen(size, str(p["fp32"]), [str(p["qdq"]), str(p["dyn"])], cache_dir,
                                                 args.reopen_repeat, profile=args.profile)
    res["loadavg_at_end"] = os.getloadavg()
    rows = print_table(res)
    la = res["loadavg_at_start"][0], res["loadavg_at_end"][0]
    print(f"\nload average at start / end: {la[0]:.1f} / {la[1]:.1f} on {os.cpu_count()} cores"
          + ("  (shared, busy machine: expect noisy timings)" if max(la) > (os.cpu_count() or 1) * 0.75 else ""))
    if args.save:
        out = Path(args.results)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=str))
        print(f"results written to {out}")
    return 0 if all(r[3] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
