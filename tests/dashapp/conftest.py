"""Fixtures of the dashboard's unit tests: tiny hand-built models (see tiny_models.py)."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from tiny_models import WEIGHTS, _graph, _other_model, make_weights, qdq_model


@pytest.fixture(scope="session")
def tiny_weights():
    return make_weights()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_weights) -> Path:
    """Folder with fp32.onnx, good.onnx, coarse.onnx, partial.onnx, other.onnx and a broken file."""
    d = tmp_path_factory.mktemp("tiny_models")
    W = tiny_weights
    fine = {n: (float(np.abs(a).max() / 127), None) for n, a in W.items()}
    onnx.save(_graph(W), d / "fp32.onnx")
    onnx.save(qdq_model(W, fine), d / "good.onnx")
    coarse = dict(fine)
    coarse["fc2.weight"] = (float(np.abs(W["fc2.weight"]).max() / 2), None)
    coarse["fc1.weight"] = (np.abs(W["fc1.weight"]).max(axis=0) / 127, 1)
    onnx.save(qdq_model(W, coarse), d / "coarse.onnx")
    onnx.save(qdq_model(W, {"fc1.weight": fine["fc1.weight"]}), d / "partial.onnx")
    other = {f"t{i}": (np.random.default_rng(99 + i).standard_normal(s) * 2).astype(np.float32)
             for i, s in enumerate(WEIGHTS.values())}
    onnx.save(_other_model(other), d / "other.onnx")
    (d / "broken.onnx").write_bytes(b"not a model")
    return d


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """Analysis of good, coarse, partial and other against fp32 (no disk cache)."""
    import analysis
    return analysis.analyze(tiny_dir / "fp32.onnx",
                            [tiny_dir / f"{n}.onnx" for n in ("good", "coarse", "partial", "other")],
                            cache=False)
