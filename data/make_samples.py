"""Build the sample ONNX models shipped in ``data/``.

Trains a small CNN in pure NumPy on scikit-learn's bundled 8x8 digits data
set, exports it to ONNX with ``onnx.helper`` and derives four quantized
variants with ``onnxruntime.quantization``.  Every file is written into a
temporary directory first and then copied into the output folder, together
with a generated ``README.md`` describing the results.

Run from the repository root::

    .venv/bin/python data/make_samples.py            # writes into data/
    .venv/bin/python data/make_samples.py --out /tmp/x

The script is seeded and deterministic: two runs on the same machine with
the same library versions produce byte-identical files.  It is a build-time
tool only; the QuantLens app must never import it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

SEED = 0
OPSET = 17
IR_VERSION = 8
TEST_SIZE = 0.25
SPLIT_RANDOM_STATE = 0
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
N_CALIBRATION = 320
CALIBRATION_BATCH = 32
FC1_OUT, FC2_OUT, N_CLASSES = 64, 48, 10  # fc3 has K = 48 (not a multiple of 32)

FP32_FILE = "cnn_fp32.onnx"
VARIANT_FILES = {
    "qdq_perchannel": "cnn_int8_qdq_perchannel.onnx",
    "qop_pertensor": "cnn_uint8_qop_pertensor.onnx",
    "dynamic": "cnn_dynamic_uint8.onnx",
    "matmulnbits": "cnn_matmulnbits_4bit.onnx",
}


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
def load_data():
    """Load the digits data set and return a fixed train/test split.

    Images are scaled from [0, 16] to [0, 1] and shaped [N, 1, 8, 8] float32.
    Returns ``(x_train, x_test, y_train, y_test)``; the test split has 450 images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=TEST_SIZE, random_state=SPLIT_RANDOM_STATE)


# --------------------------------------------------------------------------
# NumPy CNN: forward and backward
# --------------------------------------------------------------------------
def init_params(rng):
    """He-normal weights and zero biases, laid out exactly as they are exported.

    Conv weights are [out, in, 3, 3]; ``fc1.weight`` and ``fc3.weight`` are
    MatMul B matrices [in, out]; ``fc2.weight`` is a Gemm transB=1 matrix [out, in].
    """

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1.weight": he((16, 1, 3, 3), 1 * 9),
        "conv1.bias": np.zeros(16, np.float32),
        "conv2.weight": he((32, 16, 3, 3), 16 * 9),
        "conv2.bias": np.zeros(32, np.float32),
        "fc1.weight": he((512, FC1_OUT), 512),
        "fc1.bias": np.zeros(FC1_OUT, np.float32),
        "fc2.weight": he((FC2_OUT, FC1_OUT), FC1_OUT),
        "fc2.bias": np.zeros(FC2_OUT, np.float32),
        "fc3.weight": he((FC2_OUT, N_CLASSES), FC2_OUT),
        "fc3.bias": np.zeros(N_CLASSES, np.float32),
    }


def im2col(x):
    """[B, C, H, W] -> [B*H*W, C*9] patches for a 3x3, stride 1, pad 1 conv."""
    b, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # B,C,H,W,3,3
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(b * h * w, c * 9)


def col2im(dcols, shape):
    """Adjoint of :func:`im2col`: scatter-add patch gradients back to [B, C, H, W]."""
    b, c, h, w = shape
    d = dcols.reshape(b, h, w, c, 3, 3)
    dxp = np.zeros((b, c, h + 2, w + 2), dcols.dtype)
    for ki in range(3):
        for kj in range(3):
            dxp[:, :, ki : ki + h, kj : kj + w] += d[:, :, :, :, ki, kj].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1]


def conv_forward(x, weight, bias):
    """3x3 same-padding convolution (ONNX Conv semantics). Returns (y, cols)."""
    b, _, h, w = x.shape
    cols = im2col(x)
    y = cols @ weight.reshape(weight.shape[0], -1).T + bias
    return y.reshape(b, h, w, -1).transpose(0, 3, 1, 2), cols


def conv_backward(dy, cols, x_shape, weight, need_dx=True):
    """Gradients of :func:`conv_forward` w.r.t. weight, bias and (optionally) input."""
    out_c = weight.shape[0]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, out_c)
    dw = (dy2.T @ cols).reshape(weight.shape)
    db = dy2.sum(axis=0)
    dx = col2im(dy2 @ weight.reshape(out_c, -1), x_shape) if need_dx else None
    return dw, db, dx


def maxpool_forward(x):
    """2x2 / stride 2 max pool. Returns (y, argmax index per window)."""
    b, c, h, w = x.shape
    win = x.reshape(b, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    idx = win.argmax(axis=-1)
    return np.take_along_axis(win, idx[..., None], axis=-1)[..., 0], idx


def maxpool_backward(dy, idx, x_shape):
    """Route pooled gradients to the arg-max position of each 2x2 window."""
    b, c, h, w = x_shape
    dwin = np.zeros((b, c, h // 2, w // 2, 4), dy.dtype)
    np.put_along_axis(dwin, idx[..., None], dy[..., None], axis=-1)
    return dwin.reshape(b, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x_shape)


def forward(params, x, keep=False):
    """Forward pass; returns logits (and the activation cache if ``keep``)."""
    p = params
    z1, cols1 = conv_forward(x, p["conv1.weight"], p["conv1.bias"])
    a1 = np.maximum(z1, 0)
    z2, cols2 = conv_forward(a1, p["conv2.weight"], p["conv2.bias"])
    a2 = np.maximum(z2, 0)
    pooled, pidx = maxpool_forward(a2)
    flat = pooled.reshape(x.shape[0], -1)
    z3 = flat @ p["fc1.weight"] + p["fc1.bias"]  # MatMul + Add
    a3 = np.maximum(z3, 0)
    z4 = a3 @ p["fc2.weight"].T + p["fc2.bias"]  # Gemm transB=1
    a4 = np.maximum(z4, 0)
    logits = a4 @ p["fc3.weight"] + p["fc3.bias"]  # MatMul + Add
    if not keep:
        return logits
    cache = dict(x=x, cols1=cols1, z1=z1, a1=a1, cols2=cols2, z2=z2, a2=a2, pidx=pidx,
                 flat=flat, z3=z3, a3=a3, z4=z4, a4=a4)
    return logits, cache


def loss_and_grads(params, x, y):
    """Mean softmax cross-entropy and its gradients for one mini-batch."""
    p = params
    logits, c = forward(params, x, keep=True)
    n = x.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())

    g = {}
    dlogits = probs
    dlogits[np.arange(n), y] -= 1.0
    dlogits /= n
    g["fc3.weight"] = c["a4"].T @ dlogits
    g["fc3.bias"] = dlogits.sum(axis=0)
    dz4 = (dlogits @ p["fc3.weight"].T) * (c["z4"] > 0)
    g["fc2.weight"] = dz4.T @ c["a3"]
    g["fc2.bias"] = dz4.sum(axis=0)
    dz3 = (dz4 @ p["fc2.weight"]) * (c["z3"] > 0)
    g["fc1.weight"] = c["flat"].T @ dz3
    g["fc1.bias"] = dz3.sum(axis=0)
    dpooled = (dz3 @ p["fc1.weight"].T).reshape(n, 32, 4, 4)
    dz2 = maxpool_backward(dpooled, c["pidx"], c["a2"].shape) * (c["z2"] > 0)
    g["conv2.weight"], g["conv2.bias"], da1 = conv_backward(dz2, c["cols2"], c["a1"].shape, p["conv2.weight"])
    dz1 = da1 * (c["z1"] > 0)
    g["conv1.weight"], g["conv1.bias"], _ = conv_backward(dz1, c["cols1"], x.shape, p["conv1.weight"], False)
    return loss, g


def accuracy(logits, y):
    """Top-1 accuracy of ``logits`` against integer labels ``y``."""
    return float((np.asarray(logits).argmax(axis=1) == y).mean())


def train(x_train, y_train, x_test, y_test, rng):
    """Train with Adam (lr 2e-3, batch 32, 30 epochs) and return float32 params."""
    params = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    n = x_train.shape[0]
    for epoch in range(EPOCHS):
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            loss, grads = loss_and_grads(params, x_train[idx], y_train[idx])
            losses.append(loss)
            step += 1
            for k in params:
                gk = grads[k].astype(np.float32)
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                mhat = m[k] / (1 - b1**step)
                vhat = v[k] / (1 - b2**step)
                params[k] = (params[k] - LEARNING_RATE * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            acc = accuracy(forward(params, x_test), y_test)
            print(f"  epoch {epoch + 1:2d}  loss {np.mean(losses):.4f}  test acc {acc:.4f}")
    return params


# --------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------
def build_onnx(params):
    """Build the FP32 ONNX model (opset 17, IR 8) with readable node/tensor names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def node(op, inputs, outputs, name, **attrs):
        return helper.make_node(op, inputs, outputs, name=name, **attrs)

    conv_attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    nodes = [
        node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], "conv1", **conv_attrs),
        node("Relu", ["conv1_out"], ["relu1_out"], "relu1"),
        node("Conv", ["relu1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], "conv2", **conv_attrs),
        node("Relu", ["conv2_out"], ["relu2_out"], "relu2"),
        node("MaxPool", ["relu2_out"], ["pool_out"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["pool_out"], ["flatten_out"], "flatten", axis=1),
        node("MatMul", ["flatten_out", "fc1.weight"], ["fc1_matmul_out"], "fc1"),
        node("Add", ["fc1_matmul_out", "fc1.bias"], ["fc1_out"], "fc1_add"),
        node("Relu", ["fc1_out"], ["relu3_out"], "relu3"),
        node("Gemm", ["relu3_out", "fc2.weight", "fc2.bias"], ["fc2_out"], "fc2", transB=1),
        node("Relu", ["fc2_out"], ["relu4_out"], "relu4"),
        node("MatMul", ["relu4_out", "fc3.weight"], ["fc3_matmul_out"], "fc3"),
        node("Add", ["fc3_matmul_out", "fc3.bias"], ["logits"], "fc3_add"),
    ]
    initializers = [numpy_helper.from_array(params[k], name=k) for k in params]
    graph = helper.make_graph(
        nodes,
        "quantlens_digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", N_CLASSES])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="quantlens-make-samples",
        producer_version="1",
        ir_version=IR_VERSION,
    )
    model.doc_string = "Digits 8x8 CNN trained in NumPy by data/make_samples.py (seed 0)."
    onnx.checker.check_model(model, full_check=True)
    return model


def preprocess(model_path, out_path):
    """Run ORT's ``quant_pre_process`` (shape inference only, no ORT graph optimization).

    ORT's basic optimizer would fuse MatMul+Add into Gemm, removing the MatMul
    nodes the MatMulNBits variant needs, so ``skip_optimization=True``.
    Weights and names are unchanged; value_info and the pre-process marker
    (metadata ``onnx.quant.pre_process``) are added.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(model_path), str(out_path), skip_optimization=True)


def make_session(path):
    """Single-threaded CPU InferenceSession (deterministic reductions)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_model(path, x):
    """Run an ONNX model file on ``x`` and return the logits."""
    sess = make_session(path)
    return sess.run(["logits"], {"input": x})[0]


# --------------------------------------------------------------------------
# Quantization
# --------------------------------------------------------------------------
def make_calibration_reader(images):
    """Return a CalibrationDataReader yielding ``images`` in fixed-size batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class DigitsCalibrationReader(CalibrationDataReader):
        """Feeds a fixed, ordered list of training images to the calibrator."""

        def __init__(self, data):
            self._batches = [
                {"input": np.ascontiguousarray(data[i : i + CALIBRATION_BATCH])}
                for i in range(0, len(data), CALIBRATION_BATCH)
            ]
            self._it = iter(self._batches)

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(self._batches)

        def __len__(self):
            return len(self._batches)

    return DigitsCalibrationReader(images)


def quantize_variants(fp32_path, calib_images, tmp):
    """Create the four quantized variants inside ``tmp``; return {key: path}."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    out = {k: tmp / f for k, f in VARIANT_FILES.items()}

    quantize_static(
        str(fp32_path), str(out["qdq_perchannel"]), make_calibration_reader(calib_images),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )
    quantize_static(
        str(fp32_path), str(out["qop_pertensor"]), make_calibration_reader(calib_images),
        quant_format=QuantFormat.QOperator, per_channel=False,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
    )
    quantize_dynamic(str(fp32_path), str(out["dynamic"]), weight_type=QuantType.QUInt8)

    cfg = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=False, bits=4,
                                       quant_format=QuantFormat.QOperator)
    q = MatMulNBitsQuantizer(str(fp32_path), bits=4, block_size=32, is_symmetric=False, algo_config=cfg)
    q.process()
    q.model.save_model_to_file(str(out["matmulnbits"]), use_external_data_format=False)
    return out


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------
def sha256(path):
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def describe(path):
    """Summarise an ONNX file: opsets, ops (with domain) and initializers."""
    import onnx

    m = onnx.load(str(path))
    ops = {}
    for n in m.graph.node:
        key = f"{n.domain or 'ai.onnx'}::{n.op_type}"
        ops[key] = ops.get(key, 0) + 1
    def dtype(t):
        name = onnx.TensorProto.DataType.Name(t.data_type).lower()
        return "float32" if name == "float" else name

    inits = [(t.name, dtype(t), list(t.dims)) for t in m.graph.initializer]
    opsets = {(o.domain or "ai.onnx"): o.version for o in m.opset_import}
    produced = {o for n in m.graph.node for o in n.output}
    stale = [v.name for v in m.graph.value_info if v.name not in produced]
    unnamed = [n.op_type for n in m.graph.node if not n.name]
    return {"ir": m.ir_version, "opsets": opsets, "ops": ops, "inits": inits, "stale": stale, "unnamed": unnamed}


QUANT_TEXT = {
    FP32_FILE: "none: FP32 reference, exported with onnx.helper and passed through "
               "`quant_pre_process(skip_optimization=True)`; this exact file is the input of every quantizer",
    VARIANT_FILES["qdq_perchannel"]: "`quantize_static`, QuantFormat.QDQ, per_channel=True, "
                                     "activations QUInt8, weights QInt8 (MinMax calibration)",
    VARIANT_FILES["qop_pertensor"]: "`quantize_static`, QuantFormat.QOperator, per_channel=False, "
                                    "activations QUInt8, weights QUInt8 (MinMax calibration)",
    VARIANT_FILES["dynamic"]: "`quantize_dynamic`, weight_type=QUInt8 (activations quantized at run time)",
    VARIANT_FILES["matmulnbits"]: "`MatMulNBitsQuantizer` bits=4, block_size=32, is_symmetric=False "
                                  "(DefaultWeightOnlyQuantConfig, QOperator): weight-only, MatMul only",
}


def write_readme(out_dir, rows, infos, train_info):
    """Write ``README.md`` in ``out_dir`` (content is deterministic: no timings)."""
    fp_acc = rows[0]["acc"]
    lines = [
        "# Sample models",
        "",
        "Small ONNX models for trying QuantLens. They are **generated**: do not edit them by hand,",
        "re-run the script instead (from the repository root):",
        "",
        "```",
        ".venv/bin/python data/make_samples.py            # writes into data/",
        ".venv/bin/python data/make_samples.py --out DIR  # writes elsewhere",
        "```",
        "",
        "`make_samples.py` is a build-time tool; the app does not import it. It needs only",
        "numpy, scikit-learn, onnx and onnxruntime (no torch, no downloads: the digits data set",
        "ships inside scikit-learn). This README is written by the script too.",
        "",
        "## Model",
        "",
        "A CNN for scikit-learn's `load_digits` (1797 8x8 grey images, 10 classes), trained in",
        "pure NumPy (hand-written forward/backward, im2col convolutions).",
        "",
        "| node | op | shape |",
        "|---|---|---|",
        "| input | `input` float32 | [N, 1, 8, 8], pixels scaled to [0, 1] |",
        "| conv1 + relu1 | Conv 3x3 pad 1 | 1 -> 16 channels, weight `conv1.weight` [16,1,3,3] |",
        "| conv2 + relu2 | Conv 3x3 pad 1 | 16 -> 32 channels, weight `conv2.weight` [32,16,3,3] |",
        "| pool | MaxPool 2x2 stride 2 | -> [N, 32, 4, 4] |",
        "| flatten | Flatten axis 1 | -> [N, 512] |",
        f"| fc1 + fc1_add + relu3 | **MatMul + Add** | 512 -> {FC1_OUT}, `fc1.weight` [512,{FC1_OUT}] (K=512) |",
        f"| fc2 + relu4 | **Gemm transB=1** | {FC1_OUT} -> {FC2_OUT}, `fc2.weight` [{FC2_OUT},{FC1_OUT}] ([out, in]) |",
        f"| fc3 + fc3_add | **MatMul + Add** | {FC2_OUT} -> 10, `fc3.weight` [{FC2_OUT},10] (K={FC2_OUT}: "
        "not a multiple of 32, so the 4-bit model pads its last block) |",
        "| output | `logits` float32 | [N, 10] |",
        "",
        "FP32 model: opset 17, IR version 8, dynamic batch dimension `N`.",
        "",
        "Training: `np.random.default_rng(0)` for the He-normal initialisation and the epoch",
        f"shuffles; `train_test_split(test_size={TEST_SIZE}, random_state={SPLIT_RANDOM_STATE})` gives "
        f"{train_info['n_train']} training",
        f"and {train_info['n_test']} test images; Adam (lr {LEARNING_RATE}, betas 0.9/0.999), batch "
        f"{BATCH_SIZE}, {EPOCHS} epochs,",
        "softmax cross-entropy, float32, no augmentation or regularisation. The exported model",
        "was checked with `onnx.checker` and its onnxruntime logits match the NumPy forward pass",
        f"(max abs difference {train_info['max_diff']:.1e}).",
        "",
        f"Calibration for the static variants: the first {N_CALIBRATION} training images in batches of "
        f"{CALIBRATION_BATCH}",
        "(CalibrationMethod.MinMax, the default).",
        "",
        "## Files",
        "",
        f"Accuracy is top-1 on the {train_info['n_test']}-image test split, run with onnxruntime "
        "(CPUExecutionProvider).",
        "",
        "| file | size (bytes) | accuracy | vs FP32 | quantization |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        delta = (r["acc"] - fp_acc) * 100
        lines.append(f"| `{r['file']}` | {r['size']} | {r['acc'] * 100:.2f}% | {delta:+.2f} pp | "
                     f"{QUANT_TEXT[r['file']]} |")
    lines += ["", "## Operators and initializers", ""]
    for r in rows:
        info = infos[r["file"]]
        opsets = ", ".join(f"{d} {v}" for d, v in sorted(info["opsets"].items()))
        lines += [f"### `{r['file']}`", "", f"IR version {info['ir']}; opsets: {opsets}.", "",
                  "Ops (domain::op_type x count): "
                  + ", ".join(f"`{k}` x{v}" for k, v in info["ops"].items()) + ".", ""]
        float_w = [n for n, dt, _ in info["inits"] if dt == "float32" and not n.endswith(("scale", "scales"))]
        if r["file"] != FP32_FILE and float_w:
            lines += ["Initializers left in float32 (scales not counted): "
                      + ", ".join(f"`{n}`" for n in float_w) + ".", ""]
        if info["stale"]:
            lines += [f"Stale value_info ({len(info['stale'])} of the entries name tensors no node produces): "
                      + ", ".join(f"`{n}`" for n in info["stale"]) + ".", ""]
        if info["unnamed"]:
            lines += ["Nodes without a name: " + ", ".join(f"`{t}`" for t in info["unnamed"]) + ".", ""]
        lines += ["<details><summary>initializers</summary>", "", "| name | dtype | shape |", "|---|---|---|"]
        lines += [f"| `{n}` | {dt} | {dims} |" for n, dt, dims in info["inits"]]
        lines += ["", "</details>", ""]
    lines += NOTES + ["", "## sha256", "", "```"]
    lines += [f"{r['sha256']}  {r['file']}" for r in rows]
    lines += ["```", ""]
    (out_dir / "README.md").write_text("\n".join(lines))


NOTES = [
    "## Notes",
    "",
    "- `cnn_fp32.onnx` is the exact file the quantizers read. It went through",
    "  `quant_pre_process` with `skip_optimization=True`, which only adds value_info (shape",
    "  inference) and the `onnx.quant.pre_process` metadata entry; names and weights are those",
    "  of the NumPy model. ORT's graph optimizer was skipped on purpose: its basic level fuses",
    "  MatMul + Add into Gemm (`fc1/MatMulAddFusion`), which would leave no MatMul for the",
    "  4-bit quantizer.",
    "- `cnn_int8_qdq_perchannel.onnx`: int8 weights are symmetric (all zero points 0) with one",
    "  scale per output channel: DequantizeLinear `axis=0` for the Conv weights and the Gemm",
    "  weight ([out, in]), `axis=1` for the MatMul weights ([K, N]). Conv and Gemm biases are",
    "  int32 with scale input_scale x weight_scale per channel. The biases of the MatMul + Add",
    "  pairs (`fc1.bias`, `fc3.bias`) are plain Add inputs to ORT, so they are quantized like",
    "  activations: uint8, per-tensor, non-zero zero point. The Relu nodes are removed (a uint8",
    "  zero point of 0 on their outputs does the clipping).",
    "- `cnn_uint8_qop_pertensor.onnx`: everything per-tensor; the uint8 weights are asymmetric",
    "  with non-zero zero points (e.g. 133 for `conv1.weight`). The bias adds after fc1/fc3 become",
    "  `com.microsoft::QLinearAdd` with uint8 biases; fc2 becomes `com.microsoft::QGemm`",
    "  (transB=1 kept, int32 bias). Relus are folded away, MaxPool and Flatten run directly on",
    "  uint8 tensors, with one QuantizeLinear at the input and one DequantizeLinear at the output.",
    "- `cnn_dynamic_uint8.onnx`: weights uint8 per-tensor asymmetric, biases stay float32 and",
    "  are added after the rescaling Mul. `quantize_dynamic` first rewrites the `fc2` Gemm",
    "  (transB=1) into MatMul + Add (`fc2_MatMul_quant` / `fc2_Add`). Because `fc2.weight` is",
    "  an initializer, ORT 1.31.1 transposes it in place and keeps the name, so",
    "  `fc2.weight_quantized` is [in, out] = [64, 48]; a `_Transposed` Transpose node is only",
    "  inserted when B is not a constant.",
    "- `cnn_matmulnbits_4bit.onnx`: `MatMulNBitsQuantizer` only touches MatMul nodes (fc1, fc3);",
    "  the convolutions and the fc2 Gemm stay float32. Weights are packed per output column:",
    "  `*_Q4` is [N, K/32 blocks, 16 bytes], `*_scales` [N, blocks], `*_zero_points` [N,",
    "  ceil(blocks/2)] (two 4-bit zero points per byte). fc3 has K=48, so its second block holds",
    "  16 real rows and 16 rows of padding.",
    "- quantize_static copies the FP32 model's value_info into its output even where the tensor",
    "  was renamed or removed, hence the stale value_info listed above: do not rely on",
    "  value_info of quantized models for shapes.",
    "- Determinism: the script is seeded (`default_rng(0)`, `random_state=0`), calibration uses a",
    "  fixed ordered set of images, and all quantizers write into a temporary directory before",
    "  the files are copied here; training runs with BLAS limited to one thread (threadpoolctl).",
    "  Runs on the same machine gave byte-identical files (sha256 compared, README included),",
    "  also with a different `PYTHONHASHSEED`. Training uses float32 BLAS arithmetic, so a different CPU, BLAS",
    "  build or numpy/onnxruntime version may change low-order bits of the weights and hence the",
    "  hashes, though not the accuracies in any meaningful way.",
]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
def main():
    """Train, export, quantize, evaluate and write everything into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output folder (default: the folder of this script)")
    args = parser.parse_args()
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import onnx

    x_train, x_test, y_train, y_test = load_data()
    print(f"digits: {len(x_train)} train / {len(x_test)} test images")
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    # The matrices are tiny: multi-threaded BLAS only adds overhead, and on a busy
    # machine its spinning threads can make training 10x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        params = train(x_train, y_train, x_test, y_test, rng)
    train_time = time.perf_counter() - t0
    np_logits = forward(params, x_test)
    print(f"training took {train_time:.1f} s, numpy test accuracy {accuracy(np_logits, y_test):.4f}")

    with tempfile.TemporaryDirectory(prefix="quantlens-samples-") as tmp_name:
        tmp = Path(tmp_name)
        raw_path = tmp / "cnn_fp32_raw.onnx"
        onnx.save_model(build_onnx(params), str(raw_path))
        max_diff = float(np.abs(run_model(raw_path, x_test) - np_logits).max())
        assert np.allclose(run_model(raw_path, x_test), np_logits, rtol=1e-4, atol=1e-4), max_diff
        print(f"ORT vs NumPy logits: allclose, max abs diff {max_diff:.2e}")

        fp32_path = tmp / FP32_FILE
        preprocess(raw_path, fp32_path)
        onnx.checker.check_model(str(fp32_path), full_check=True)
        assert np.allclose(run_model(fp32_path, x_test), np_logits, rtol=1e-4, atol=1e-4)

        paths = {FP32_FILE: fp32_path}
        for key, p in quantize_variants(fp32_path, x_train[:N_CALIBRATION], tmp).items():
            paths[VARIANT_FILES[key]] = p

        rows, infos = [], {}
        for name, p in paths.items():
            shutil.copyfile(p, out_dir / name)
            final = out_dir / name
            rows.append({"file": name, "size": final.stat().st_size, "sha256": sha256(final),
                         "acc": accuracy(run_model(final, x_test), y_test)})
            infos[name] = describe(final)

    fp_acc = rows[0]["acc"]
    print(f"\n{'model':34s} {'size':>9s} {'accuracy':>9s} {'vs FP32':>9s}")
    for r in rows:
        print(f"{r['file']:34s} {r['size']:9d} {r['acc'] * 100:8.2f}% {(r['acc'] - fp_acc) * 100:+8.2f}pp")
    write_readme(out_dir, rows, infos, {"n_train": len(x_train), "n_test": len(x_test), "max_diff": max_diff})
    print(f"\nwrote {len(rows)} models and README.md to {out_dir}")


if __name__ == "__main__":
    main()
