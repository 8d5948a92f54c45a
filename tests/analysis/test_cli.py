"""``quantlens analyze``: files written, the worst-tensor table, the SQNR gate, bad input."""

import subprocess
import sys

import pandas as pd
import pytest

from analysis.cli import main

REQUIRED = ["variant", "quant_tensor", "fp32_name", "match_method", "role", "storage", "quant_op",
            "consumer_ops", "quant_dtype", "fp32_shape", "granularity", "per_channel", "axis",
            "block_size", "n_scales", "scale", "scale_min", "scale_max", "zero_point",
            "zero_point_min", "zero_point_max", "q_min", "q_max", "fp32_min", "fp32_max", "dq_min",
            "dq_max", "mse", "max_abs_err", "sqnr_db", "cosine"]


def test_analyze_writes_three_tables(sample_models, tmp_path, capsys):
    fp32, variants = sample_models
    assert main(["analyze", str(fp32), *map(str, variants), "--out", str(tmp_path)]) == 0
    layers = pd.read_csv(tmp_path / "layers.csv")
    assert set(REQUIRED) <= set(layers.columns)
    q = layers[layers.status == "quantized"]
    assert set(q.variant) == {v.stem for v in variants}
    assert len(pd.read_csv(tmp_path / "channels.csv")) > 0
    assert set(pd.read_csv(tmp_path / "histograms.csv").kind) == {"fp32", "dq", "code"}
    out = capsys.readouterr().out
    worst = q.sort_values("sqnr_db").iloc[0]
    assert worst.fp32_name in out.splitlines()[2]  # first row of the worst-tensor table


def test_fail_under_sqnr_names_the_weights(sample_models, tmp_path, capsys):
    fp32, variants = sample_models
    nbits = variants[3]  # 4-bit: about 22 dB
    assert main(["analyze", str(fp32), str(nbits), "--out", str(tmp_path), "--fail-under-sqnr", "30"]) == 3
    err = capsys.readouterr().err
    assert "fc1.weight" in err and "fc3.weight" in err
    assert main(["analyze", str(fp32), str(nbits), "--out", str(tmp_path), "--fail-under-sqnr", "10"]) == 0


@pytest.mark.parametrize("content,expect", [
    (b"", "not an ONNX model"),
    (b"hello, I am text", "not an ONNX model"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "not an ONNX model"),
])
def test_bad_input_one_line_no_traceback(sample_models, tmp_path, content, expect):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "analysis.cli", "analyze", str(sample_models[0]), str(bad),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert expect in r.stderr and "bad.onnx" in r.stderr


def test_missing_file(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.onnx"), str(tmp_path / "q.onnx"), "--out", str(tmp_path)]) == 2
    assert "nope.onnx" in capsys.readouterr().err


def test_fail_under_sqnr_fails_on_a_weight_it_could_not_measure(sample_models, tmp_path, capsys):
    """A corrupted quantized tensor must not let the gate pass: exit 3, the weight named."""
    import onnx
    fp32, variants = sample_models
    m = onnx.load(str(variants[0]))
    (t,) = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4][:1]
    t.raw_data = t.raw_data[:3]  # shorter than its dims
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(m.SerializeToString())
    assert main(["analyze", str(fp32), str(bad), "--out", str(tmp_path / "o1"), "--no-cache"]) == 0  # no gate: a warning
    capsys.readouterr()
    assert main(["analyze", str(fp32), str(bad), "--out", str(tmp_path / "o2"), "--no-cache",
                 "--fail-under-sqnr", "-1000"]) == 3
    err = capsys.readouterr().err
    assert "could not be measured" in err and "raw_data has 3 bytes" in err
    layers = pd.read_csv(tmp_path / "o2" / "layers.csv")
    assert (layers.status == "unreadable").sum() == 1
