"""``quantlens`` command line: ``analyze`` writes the tables, ``serve`` runs the dashboard."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _one_line(msg: object) -> str:
    """``msg`` on one line: model-controlled text (tensor names, paths) may hold newlines or
    terminal escapes, which are shown escaped."""
    s = str(msg)
    return s if s.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def _worst_table(layers, n: int = 10) -> str:
    q = layers[layers["status"] == "quantized"].sort_values("sqnr_db", kind="stable").head(n)
    if q.empty:
        return "no quantized tensors matched to the FP32 model"
    lines = [f"{'variant':<28} {'fp32 tensor':<36} {'role':<8} {'dtype':<7} {'granularity':<11} {'SQNR dB':>8}"]
    for r in q.itertuples():
        lines.append(f"{_one_line(r.variant)[:28]:<28} {_one_line(r.fp32_name)[:36]:<36} {str(r.role)[:8]:<8} "
                     f"{str(r.quant_dtype):<7} {str(r.granularity):<11} {r.sqnr_db:>8.2f}")
    return "\n".join(lines)


def _cmd_analyze(args) -> int:
    from . import analyze
    out = Path(args.out)
    a = analyze(args.fp32, args.variants, cache=not args.no_cache)
    out.mkdir(parents=True, exist_ok=True)
    a.layers.to_csv(out / "layers.csv", index=False)
    a.channels.to_csv(out / "channels.csv", index=False)
    a.histograms.to_csv(out / "histograms.csv", index=False)
    q = a.layers[a.layers["status"] == "quantized"]
    print(f"{len(q)} quantized tensors in {len(a.variants)} variant(s); tables written to {out}/")
    for label, probs in a.problems.items():
        for p in probs:
            print(_one_line(f"warning: {label}: {p}"), file=sys.stderr)
    print(_worst_table(a.layers))
    if args.fail_under_sqnr is not None:
        bad = q[q["sqnr_db"].fillna(-math.inf) < args.fail_under_sqnr]
        # a gate must not pass a weight it could not measure
        unread = a.layers[a.layers["status"] == "unreadable"]
        if len(bad):
            print(f"FAIL: {len(bad)} weight(s) below {args.fail_under_sqnr} dB SQNR:", file=sys.stderr)
            for r in bad.itertuples():
                print(_one_line(f"  {r.variant}: {r.fp32_name} ({r.sqnr_db:.2f} dB)"), file=sys.stderr)
        if len(unread):
            print(f"FAIL: {len(unread)} weight(s) could not be measured:", file=sys.stderr)
            for r in unread.itertuples():
                print(_one_line(f"  {r.variant}: {r.fp32_name} ({r.reason})"), file=sys.stderr)
        if len(bad) or len(unread):
            return 3
    return 0


def _cmd_serve(args) -> int:
    if args.model_dir:
        os.environ["QUANTLENS_MODEL_DIR"] = args.model_dir
    from dashapp.app import create_app
    app = create_app()
    app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quantlens`` console script; returns the exit code."""
    p = argparse.ArgumentParser(prog="quantlens", description="See what quantization did to an ONNX model.")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("analyze", help="compare quantized variants with their FP32 model")
    a.add_argument("fp32", help="the FP32 model fed to the quantizer")
    a.add_argument("variants", nargs="+", metavar="QUANT", help="quantized variant(s)")
    a.add_argument("--out", required=True, help="folder for layers.csv, channels.csv, histograms.csv")
    a.add_argument("--fail-under-sqnr", type=float, metavar="DB",
                   help="exit 3 and name the weights whose SQNR is below DB (or that could not be measured)")
    a.add_argument("--no-cache", action="store_true", help="recompute, ignore QUANTLENS_CACHE_DIR")
    s = sub.add_parser("serve", help="run the dashboard locally (development server)")
    s.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8050")))
    s.add_argument("--model-dir", default=None, help="models to offer (default $QUANTLENS_MODEL_DIR or data/)")
    s.add_argument("--debug", action="store_true", help="Dash dev tools (never on a shared server)")
    args = p.parse_args(argv)
    from .errors import QuantLensError
    try:
        return _cmd_analyze(args) if args.cmd == "analyze" else _cmd_serve(args)
    except QuantLensError as e:
        print(_one_line(f"quantlens: error: {e}"), file=sys.stderr)
        return 2
    except OSError as e:
        print(_one_line(f"quantlens: error: {e.strerror or e}: {e.filename or ''}".rstrip(": ")), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quantlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
