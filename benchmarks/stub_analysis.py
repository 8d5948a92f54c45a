"""Stand-in for ``analysis.analyze`` used to self-test the benchmark harness
before / independently of the real implementation:

    python -m benchmarks.run --sizes 5M --analysis-module benchmarks.stub_analysis

It simply delegates to the naive reference (so ratios are ~1 and the
exactness check must pass).
"""

from __future__ import annotations

from .naive import analyze as _naive_analyze


def analyze(fp32_path, variant_paths, *, cache=True):
    return _naive_analyze(fp32_path, variant_paths)
