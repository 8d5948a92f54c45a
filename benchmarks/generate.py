"""Seeded generator of transformer-like FP32 ONNX models + their quantized variants.

    python -m benchmarks.generate --params 50M [--out benchmarks/.models] [--seed 0]

Layout of one model set (``<out>/<label>_s<seed>/``)::

    fp32.onnx  fp32.onnx.data     FP32 model, all tensors >= 1 KiB external (4 KiB aligned)
    qdq.onnx   qdq.onnx.data      QDQ per-channel int8 weights / uint8 activations (quantize_static)
    dyn.onnx   dyn.onnx.data      dynamic uint8 (quantize_dynamic -> MatMulInteger / ConvInteger)
    manifest.json                 shape, parameter count, timings; written last = "complete"

Model: image input [1,3,32,32] -> Conv 3->d 4x4 stride 4 -> reshape/transpose to
64 tokens of width d -> N pre-LN blocks (LayerNorm, Q/K/V/O [d,d] MatMul+Add,
single-head softmax attention, LayerNorm, MatMul [d,4d]+Add, Relu, MatMul
[4d,d]+Add, residual Adds) -> LayerNorm.  Parameters = 51 d + N (12 d^2 + 13 d).

Weights: N(0,1) * per-output-channel scale (log-normal around 1/sqrt(fan_in)),
plus rare outliers (fraction 1e-5 multiplied by 20).  Each tensor has its own
RNG stream seeded by (seed, tensor index), generated and written one at a
time (peak memory ~ one tensor).

Quantized variants are written by onnxruntime's quantize_static (QDQ,
per-channel int8 weights, uint8 activations, MinMax calibration on two seeded
random images) and quantize_dynamic (uint8 weights), each run in a fresh
subprocess with a memory watchdog.  Measured on the 2-core / 24 GB dev box:
ORT handles 1B fine (QDQ ~150 s / ~12 GiB peak RSS, dynamic ~60 s / ~11.4
GiB), i.e. ~3.2x the FP32 size in RAM -- budget that on smaller machines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / ".models"
ALIGN = 4096
EXTERNAL_THRESHOLD = 1024  # bytes; smaller tensors stay inline in the protobuf
IMAGE_HW = 32
PATCH = 4
OUTLIER_FRACTION = 1e-5
OUTLIER_FACTOR = 20.0
OPSET = 17
IR_VERSION = 8

# ---------------------------------------------------------------------------
# sizing
# ---------------------------------------------------------------------------


def parse_params(s: str | int) -> int:
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*", str(s))
    if not m:
        raise ValueError(f"cannot parse parameter count {s!r} (use e.g. 50M, 300M, 1B, 1234567)")
    mult = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}[m.group(2).lower()]
    return int(round(float(m.group(1)) * mult))


def size_label(n: int) -> str:
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div and abs(n / div - round(n / div)) < 1e-9:
            return f"{int(round(n / div))}{suf}"
    return str(n)


def count_params(d: int, n_blocks: int) -> int:
    stem = 3 * PATCH * PATCH * d + d
    block = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
    return stem + n_blocks * block + 2 * d


def choose_shape(target: int, tol: float = 0.02) -> tuple[int, int]:
    """Pick (d, n_blocks) for a parameter target.

    d is a multiple of 64; n_blocks is chosen to hit the target.  Among the
    candidates within ``tol`` relative error, prefer powers of two, then
    multiples of 256, then d closest to the nominal width sqrt(target/192)
    (which gives GPT-like aspect ratios: 50M -> 512x16, 300M -> 1024x24,
    1B -> 2048x20)."""
    d_nom = math.sqrt(target / 192.0)
    cands = []
    for d in range(64, 16384 + 1, 64):
        per = count_params(d, 1) - count_params(d, 0)
        n = max(1, round((target - count_params(d, 0)) / per))
        err = abs(count_params(d, n) - target) / target
        cls = 0 if (d & (d - 1)) == 0 else (1 if d % 256 == 0 else 2)
        cands.append((err, cls, abs(math.log(d / d_nom)), d, n))
    ok = [c for c in cands if c[0] <= tol and c[2] <= math.log(2.5)]
    if ok:
        best = min(ok, key=lambda c: (c[1], c[2]))
    else:
        best = min(cands, key=lambda c: (c[0], c[2]))
    return best[3], best[4]


# ---------------------------------------------------------------------------
# tensor specs and value generation
# ---------------------------------------------------------------------------


@dataclass
class TensorSpec:
    name: str
    shape: tuple
    kind: str  # "matmul" (channel axis 1), "conv" (axis 0), "bias", "ln_w", "ln_b"


def tensor_specs(d: int, n_blocks: int) -> list[TensorSpec]:
    specs = [
        TensorSpec("stem.conv.weight", (d, 3, PATCH, PATCH), "conv"),
        TensorSpec("stem.conv.bias", (d,), "bias"),
    ]
    for i in range(n_blocks):
        p = f"blocks.{i}."
        specs += [TensorSpec(p + "ln1.weight", (d,), "ln_w"), TensorSpec(p + "ln1.bias", (d,), "ln_b")]
        for proj in ("q", "k", "v", "o"):
            specs += [
                TensorSpec(p + f"attn.{proj}.weight", (d, d), "matmul"),
                TensorSpec(p + f"attn.{proj}.bias", (d,), "bias"),
            ]
        specs += [TensorSpec(p + "ln2.weight", (d,), "ln_w"), TensorSpec(p + "ln2.bias", (d,), "ln_b")]
        specs += [
            TensorSpec(p + "mlp.fc1.weight", (d, 4 * d), "matmul"),
            TensorSpec(p + "mlp.fc1.bias", (4 * d,), "bias"),
            TensorSpec(p + "mlp.fc2.weight", (4 * d, d), "matmul"),
            TensorSpec(p + "mlp.fc2.bias", (d,), "bias"),
        ]
    specs += [TensorSpec("final_ln.weight", (d,), "ln_w"), TensorSpec("final_ln.bias", (d,), "ln_b")]
    return specs


def make_tensor_values(spec: TensorSpec, seed: int, index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    shape = spec.shape
    if spec.kind in ("matmul", "conv"):
        axis = 1 if spec.kind == "matmul" else 0
        fan_in = int(np.prod(shape)) // shape[axis]
        w = rng.standard_normal(shape, dtype=np.float32)
        # per-output-channel spread: log-normal scale around 1/sqrt(fan_in)
        ch_scale = (rng.lognormal(mean=0.0, sigma=0.5, size=shape[axis]) / math.sqrt(fan_in)).astype(np.float32)
        bshape = [1] * len(shape)
        bshape[axis] = shape[axis]
        w *= ch_scale.reshape(bshape)
        # rare large outliers
        n_out = int(rng.binomial(w.size, OUTLIER_FRACTION))
        if n_out:
            idx = rng.choice(w.size, size=n_out, replace=False)
            w.reshape(-1)[idx] *= np.float32(OUTLIER_FACTOR)
        return w
    if spec.kind == "bias":
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    if spec.kind == "ln_w":
        return (1.0 + rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)).astype(np.float32)
    if spec.kind == "ln_b":
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    raise ValueError(spec.kind)


# ---------------------------------------------------------------------------
# FP32 model (graph + streamed external data)
# ---------------------------------------------------------------------------


def build_graph_nodes(d: int, n_blocks: int):
    from onnx import helper

    nodes = []
    T = (IMAGE_HW // PATCH) ** 2

    def n(op, ins, outs, name, **attrs):
        nodes.append(helper.make_node(op, ins, outs, name=name, **attrs))
        return outs[0]

    x = n("Conv", ["pixel_values", "stem.conv.weight", "stem.conv.bias"], ["stem.conv.out"], "stem.conv",
          kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    x = n("Reshape", [x, "stem.tokens_shape"], ["stem.flat"], "stem.reshape")
    x = n("Transpose", [x], ["stem.tokens"], "stem.transpose", perm=[0, 2, 1])
    for i in range(n_blocks):
        p = f"blocks.{i}."
        h = n("LayerNormalization", [x, p + "ln1.weight", p + "ln1.bias"], [p + "ln1.out"], p + "ln1", axis=-1,
              epsilon=1e-5)
        proj = {}
        for nm in ("q", "k", "v"):
            mm = n("MatMul", [h, p + f"attn.{nm}.weight"], [p + f"attn.{nm}.mm"], p + f"attn.{nm}.matmul")
            proj[nm] = n("Add", [mm, p + f"attn.{nm}.bias"], [p + f"attn.{nm}.out"], p + f"attn.{nm}.add")
        kt = n("Transpose", [proj["k"]], [p + "attn.kT"], p + "attn.k_transpose", perm=[0, 2, 1])
        s = n("MatMul", [proj["q"], kt], [p + "attn.scores"], p + "attn.qk")
        s = n("Mul", [s, "attn_scale"], [p + "attn.scores_scaled"], p + "attn.scale")
        a = n("Softmax", [s], [p + "attn.probs"], p + "attn.softmax", axis=-1)
        a = n("MatMul", [a, proj["v"]], [p + "attn.ctx"], p + "attn.av")
        o = n("MatMul", [a, p + "attn.o.weight"], [p + "attn.o.mm"], p + "attn.o.matmul")
        o = n("Add", [o, p + "attn.o.bias"], [p + "attn.o.out"], p + "attn.o.add")
        x = n("Add", [x, o], [p + "resid1"], p + "resid1")
        h = n("LayerNormalization", [x, p + "ln2.weight", p + "ln2.bias"], [p + "ln2.out"], p + "ln2", axis=-1,
              epsilon=1e-5)
        h = n("MatMul", [h, p + "mlp.fc1.weight"], [p + "mlp.fc1.mm"], p + "mlp.fc1.matmul")
        h = n("Add", [h, p + "mlp.fc1.bias"], [p + "mlp.fc1.out"], p + "mlp.fc1.add")
        h = n("Relu", [h], [p + "mlp.act"], p + "mlp.relu")
        h = n("MatMul", [h, p + "mlp.fc2.weight"], [p + "mlp.fc2.mm"], p + "mlp.fc2.matmul")
        h = n("Add", [h, p + "mlp.fc2.bias"], [p + "mlp.fc2.out"], p + "mlp.fc2.add")
        x = n("Add", [x, h], [p + "resid2"], p + "resid2")
    n("LayerNormalization", [x, "final_ln.weight", "final_ln.bias"], ["last_hidden_state"], "final_ln", axis=-1,
      epsilon=1e-5)
    return nodes, T


def write_fp32_model(out_dir: Path, d: int, n_blocks: int, seed: int, name: str = "fp32.onnx") -> dict:
    """Write the FP32 model: graph protobuf with every tensor >= EXTERNAL_THRESHOLD bytes
    marked external, data streamed tensor by tensor into <name>.data at ALIGN offsets."""
    from onnx import TensorProto, helper, numpy_helper

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / name
    data_name = name + ".data"
    data_path = out_dir / data_name
    specs = tensor_specs(d, n_blocks)
    inits = []
    t0 = time.perf_counter()
    n_params = 0
    with open(data_path, "wb") as f:
        for idx, spec in enumerate(specs):
            arr = make_tensor_values(spec, seed, idx)
            n_params += arr.size
            if arr.nbytes < EXTERNAL_THRESHOLD:
                inits.append(numpy_helper.from_array(arr, spec.name))
                continue
            off = f.tell()
            pad = (-off) % ALIGN
            if pad:
                f.write(b"\0" * pad)
                off += pad
            arr.tofile(f)
            t = TensorProto()
            t.name = spec.name
            t.data_type = TensorProto.FLOAT
            t.dims.extend(arr.shape)
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", data_name), ("offset", str(off)), ("length", str(arr.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            inits.append(t)
            del arr
    T = (IMAGE_HW // PATCH) ** 2
    inits.append(numpy_helper.from_array(np.array([1, d, T], dtype=np.int64), "stem.tokens_shape"))
    inits.append(numpy_helper.from_array(np.array(1.0 / math.sqrt(d), dtype=np.float32), "attn_scale"))
    nodes, T = build_graph_nodes(d, n_blocks)
    graph = helper.make_graph(
        nodes,
        "quantlens_bench_transformer",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, IMAGE_HW, IMAGE_HW])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, T, d])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="quantlens-bench")
    model.ir_version = IR_VERSION
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    return {"seconds": time.perf_counter() - t0, "n_params": int(n_params), "bytes": os.path.getsize(data_path)}


# ---------------------------------------------------------------------------
# quantization with onnxruntime
# ---------------------------------------------------------------------------


class RandomCalibrationReader:
    """Two seeded random images; enough for MinMax calibration."""

    def __init__(self, seed: int = 0, n: int = 2):
        rng = np.random.default_rng([seed, 999_999])
        self._data = [
            {"pixel_values": rng.standard_normal((1, 3, IMAGE_HW, IMAGE_HW), dtype=np.float32)} for _ in range(n)
        ]
        self._it = iter(self._data)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._data)


def _clean_ort_side_files(out_dir: Path):
    # ORT leaves "<model>-inferred.onnx" / augmented models next to the input on failure
    for p in out_dir.glob("*-inferred*"):
        p.unlink(missing_ok=True)
    for p in out_dir.glob("augmented_model*"):
        p.unlink(missing_ok=True)


def _quiet_ort_logging():
    # ORT warns once per 1-D weight ("Axis 1 is out-of-range ...") and about pre-processing
    import logging

    logging.getLogger().setLevel(logging.ERROR)


def ort_quantize_qdq(fp32_path: str, out_path: str, seed: int = 0) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _quiet_ort_logging()
    t0 = time.perf_counter()
    quantize_static(
        fp32_path,
        out_path,
        RandomCalibrationReader(seed),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
        use_external_data_format=True,
    )
    return {"seconds": time.perf_counter() - t0}


def ort_quantize_dynamic(fp32_path: str, out_path: str) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _quiet_ort_logging()
    t0 = time.perf_counter()
    quantize_dynamic(fp32_path, out_path, weight_type=QuantType.QUInt8, use_external_data_format=True)
    return {"seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------


def model_dir(params: int, seed: int = 0, out: Path | str | None = None) -> Path:
    return Path(out or DEFAULT_OUT) / f"{size_label(params)}_s{seed}"


def model_paths(params: int | str, seed: int = 0, out: Path | str | None = None) -> dict:
    d = model_dir(parse_params(params), seed, out)
    return {"dir": d, "fp32": d / "fp32.onnx", "qdq": d / "qdq.onnx", "dyn": d / "dyn.onnx",
            "manifest": d / "manifest.json"}


def load_manifest(params: int | str, seed: int = 0, out=None) -> dict | None:
    p = model_paths(params, seed, out)["manifest"]
    if p.exists():
        return json.loads(p.read_text())
    return None


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def ensure_models(
    params: int | str,
    seed: int = 0,
    out: Path | str | None = None,
    quantizer: str = "ort",
    force: bool = False,
    isolate: bool = True,
    log=print,
    mem_limit_bytes: int | None = None,
    timeout: float = 3600,
) -> dict:
    """Generate (or reuse) the fp32 / qdq / dyn model set; returns the manifest."""
    import fcntl

    params = parse_params(params)
    paths = model_paths(params, seed, out)
    d_dir = paths["dir"]
    d_dir.parent.mkdir(parents=True, exist_ok=True)
    # one generator per model set at a time (concurrent benchmark runs wait here)
    with open(d_dir.parent / f".{d_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_models_locked(params, seed, paths, quantizer, force, isolate, log, mem_limit_bytes, timeout)


def _ensure_models_locked(params, seed, paths, quantizer, force, isolate, log, mem_limit_bytes, timeout) -> dict:
    from . import measure

    d_dir = paths["dir"]
    if paths["manifest"].exists() and not force:
        man = json.loads(paths["manifest"].read_text())
        if all(Path(paths[k]).exists() for k in ("fp32", "qdq", "dyn")):
            return man
    if d_dir.exists():
        shutil.rmtree(d_dir)
    d_dir.mkdir(parents=True)
    d, nb = choose_shape(params)
    n_exp = count_params(d, nb)
    log(f"[generate] {size_label(params)}: d={d} blocks={nb} params={n_exp:,} "
        f"({(n_exp - params) / params:+.2%}) -> {d_dir} (quantizer={quantizer})")
    man = {"target_params": params, "label": size_label(params), "seed": seed, "d": d, "n_blocks": nb,
           "n_params": n_exp, "tokens": (IMAGE_HW // PATCH) ** 2, "quantizer": quantizer, "steps": {}}

    def step(name, target, *args):
        if isolate:
            r = measure.run_isolated(target, *args, return_result=True, timeout=timeout,
                                     mem_limit_bytes=mem_limit_bytes)
            if not r.get("ok"):
                raise RuntimeError(f"{name} failed: {r.get('error')}\n{r.get('traceback', '')}")
            info = dict(r["result"] or {})
            info.update(wall_s=r["wall_s"], peak_rss_growth=r["peak_rss_growth"],
                        max_rss_parent_view=r["max_rss_parent_view"])
        else:
            mod, fn = target.split(":")
            import importlib

            t0 = time.perf_counter()
            info = dict(getattr(importlib.import_module(mod), fn)(*args) or {})
            info["wall_s"] = time.perf_counter() - t0
        man["steps"][name] = info
        log(f"[generate]   {name}: {info['wall_s']:.1f} s"
            + (f", peak RSS +{measure.fmt_bytes(info.get('peak_rss_growth'))}" if "peak_rss_growth" in info else ""))
        return info

    info = step("fp32", "benchmarks.generate:_write_fp32_entry", str(d_dir), d, nb, seed)
    assert info["n_params"] == n_exp, (info["n_params"], n_exp)
    if quantizer == "ort":
        step("qdq", "benchmarks.generate:ort_quantize_qdq", str(paths["fp32"]), str(paths["qdq"]), seed)
        step("dyn", "benchmarks.generate:ort_quantize_dynamic", str(paths["fp32"]), str(paths["dyn"]))
    else:
        raise ValueError(f"unknown quantizer {quantizer!r}")
    _clean_ort_side_files(d_dir)
    man["disk_bytes"] = _dir_bytes(d_dir)
    man["files"] = {p.name: p.stat().st_size for p in sorted(d_dir.iterdir()) if p.is_file()}
    paths["manifest"].write_text(json.dumps(man, indent=2))
    log(f"[generate]   done: {measure.fmt_bytes(man['disk_bytes'])} on disk")
    return man


def _write_fp32_entry(out_dir: str, d: int, nb: int, seed: int) -> dict:
    return write_fp32_model(Path(out_dir), d, nb, seed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", required=True, help="50M | 300M | 1B | integer (comma-separated list allowed)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even if present")
    ap.add_argument("--no-isolate", action="store_true", help="run steps in this process (no RSS figures)")
    ap.add_argument("--mem-limit-gb", type=float, default=None, help="kill a step whose RSS exceeds this")
    ap.add_argument("--timeout", type=float, default=3600, help="kill a step running longer (s)")
    a = ap.parse_args(argv)
    for p in a.params.split(","):
        man = ensure_models(p, a.seed, a.out, "ort", a.force, isolate=not a.no_isolate,
                            mem_limit_bytes=int(a.mem_limit_gb * 2**30) if a.mem_limit_gb else None,
                            timeout=a.timeout)
        print(json.dumps({k: man[k] for k in ("label", "d", "n_blocks", "n_params", "disk_bytes")}))


if __name__ == "__main__":
    main()
