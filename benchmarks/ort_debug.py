"""Baseline: onnxruntime's own weight-error helper on a (float, QDQ) pair.

    python -m benchmarks.ort_debug FP32.onnx QDQ.onnx

runs ``onnxruntime.quantization.qdq_loss_debug.create_weight_matching`` and
``compute_weight_error`` (SQNR per weight, dB), timed.  Notes on what that
helper does (ORT 1.31), relevant when reading its numbers:

* both models go through ``load_model_with_shape_infer``: a shape-inference
  pass writing ``<model>-inferred.onnx`` next to the input, then a full
  ``onnx.load`` including external data;
* per-channel tensors are dequantized one channel at a time and concatenated
  onto the growing result (quadratic in the channel count);
* ``(q - zero_point)`` is evaluated in the integer dtype, so uint8 tensors with
  a non-zero zero point wrap around (affects e.g. Add biases that QDQ
  quantizes as uint8): those SQNRs are wrong;
* SQNR uses float32 norms;
* a 0-d (scalar) quantized initializer (e.g. a constant attention scale
  that QDQ quantizes) makes ``compute_weight_error`` raise ``TypeError:
  object of type 'numpy.float32' has no len()``.  ``run`` works around it by
  reshaping such entries to 1-element arrays (counted in ``n_scalar_patched``)
  before calling ``compute_weight_error``.
"""

from __future__ import annotations

import math
import time


def run(float_model_path: str, qdq_model_path: str) -> dict:
    from onnxruntime.quantization.qdq_loss_debug import compute_weight_error, create_weight_matching

    t0 = time.perf_counter()
    matching = create_weight_matching(str(float_model_path), str(qdq_model_path))
    t1 = time.perf_counter()
    import numpy as np

    n_patched = 0
    for v in matching.values():
        if np.ndim(v["dequantized"]) == 0 or np.ndim(v["float"]) == 0:
            v["float"] = np.asarray(v["float"]).reshape(-1)
            v["dequantized"] = np.asarray(v["dequantized"]).reshape(-1)
            n_patched += 1
    err = compute_weight_error(matching)
    t2 = time.perf_counter()
    return {
        "match_s": t1 - t0,
        "error_s": t2 - t1,
        "total_s": t2 - t0,
        "n_weights": len(err),
        "n_scalar_patched": n_patched,
        "sqnr_db": {k: (float(v) if math.isfinite(v) else None) for k, v in err.items()},
    }


def measure(float_model_path, qdq_model_path, timeout: float = 1200, **kw) -> dict:
    """Run in a fresh process (wall time + peak RSS growth)."""
    from .measure import run_isolated

    r = run_isolated("benchmarks.ort_debug:run", str(float_model_path), str(qdq_model_path),
                     return_result=True, timeout=timeout, **kw)
    return r


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("fp32")
    ap.add_argument("qdq")
    a = ap.parse_args()
    r = measure(a.fp32, a.qdq)
    res = r.pop("result", {}) or {}
    sq = res.pop("sqnr_db", {})
    print(json.dumps({**r, **res, "example_sqnr": dict(list(sq.items())[:5])}, indent=2, default=str))
