"""Fresh int8 QDQ variants of an FP32 model for the load test's uploads.

Each file quantizes every weight of the FP32 model per tensor with its own random scale
(0.6-1.4 x max|w|/127), so each has new content: an upload of it is analysed from
scratch (the analysis cache is keyed by content).

    python benchmarks/load/make_upload_models.py data/cnn_fp32.onnx OUT_DIR 300
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def variant(fp32: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(fp32)
    g = m.graph
    weights = {t.name: numpy_helper.to_array(t) for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT}
    keep = [t for t in g.initializer if t.name not in weights]
    del g.initializer[:]
    g.initializer.extend(keep)
    dq_nodes = []
    for name, w in weights.items():
        s = np.float32(max(float(np.abs(w).max()), 1e-8) / 127 * rng.uniform(0.6, 1.4))
        q = np.clip(np.round(w / s), -128, 127).astype(np.int8)
        g.initializer.extend([numpy_helper.from_array(q, f"{name}_quantized"),
                              numpy_helper.from_array(np.asarray(s), f"{name}_scale"),
                              numpy_helper.from_array(np.zeros((), np.int8), f"{name}_zero_point")])
        dq_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale",
                                                              f"{name}_zero_point"], [f"{name}_dq"],
                                         name=f"{name}_DequantizeLinear"))
        for n in g.node:
            for i, inp in enumerate(n.input):
                if inp == name:
                    n.input[i] = f"{name}_dq"
    nodes = dq_nodes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return m


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    src, out, n = Path(args[0]), Path(args[1]), int(args[2]) if len(args) > 2 else 100
    fp32 = onnx.load(str(src))
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(args[3]) if len(args) > 3 else 0)
    for i in range(n):
        (out / f"fresh_{i:04d}.onnx").write_bytes(variant(fp32, rng).SerializeToString())
    print(f"{n} variants of {src.name} in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
