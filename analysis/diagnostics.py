"""Plain-language diagnostics of one quantized tensor, from its metrics row."""

from __future__ import annotations

import math

__all__ = ["diagnose", "OUTLIER_RATIO", "CLIP_FRAC", "GRID_USE"]

#: max|w| / RMS above which the weights have outliers that stretch the grid.
OUTLIER_RATIO = 12.0
#: Share of weights outside the grid above which clipping is reported.
CLIP_FRAC = 1e-3
#: Share of integer levels used below which the grid is called wasted.
GRID_USE = 0.25
#: Smallest normal float32: a nonzero scale below it is subnormal (flushed to zero by FTZ/DAZ code).
SUBNORMAL = 1.1754944e-38


def diagnose(row: dict) -> list[str]:
    """Findings for one row of the layers table (empty when nothing stands out).

    Parameters
    ----------
    row : dict
        A row with the metric columns of :data:`analysis.schema.LAYER_COLUMNS`.

    Returns
    -------
    list of str
        Short findings, worst first: invalid or subnormal parameters, NaN/Inf, clipping,
        outliers, wasted grid.
    """
    out = []
    if row.get("scale_zero"):
        out.append(f"{row['scale_zero']} zero scale(s)")
    if row.get("scale_nonfinite"):
        out.append(f"{row['scale_nonfinite']} NaN/Inf scale(s)")
    if row.get("scale_negative") and row.get("quant_op") != "MatMulNBits":
        out.append(f"{row['scale_negative']} negative scale(s)")
    tiny = [v for v in (row.get("scale_min"), row.get("scale_max"))
            if v is not None and math.isfinite(v) and 0 < abs(v) < SUBNORMAL]
    if tiny:
        out.append(f"subnormal scale ({tiny[0]:.3g}): below float32's normal range")
    if row.get("zp_out_of_range"):
        out.append(f"zero point outside the {row.get('quant_dtype')} range")
    if row.get("fp32_nonfinite"):
        out.append(f"{row['fp32_nonfinite']} NaN/Inf in the FP32 weights")
    clip = row.get("clipped_frac")
    if clip is not None and not math.isnan(clip) and clip > CLIP_FRAC:
        out.append(f"clipping: {100 * clip:.2f}% of weights outside the grid")
    ratio = row.get("absmax_over_rms")
    if ratio is not None and not math.isnan(ratio) and ratio > OUTLIER_RATIO and row.get("granularity") == "per_tensor":
        out.append(f"outliers: max|w| is {ratio:.0f}x the RMS, stretching a per-tensor grid")
    used, avail = row.get("levels_used"), row.get("levels_available")
    if (used and avail and avail >= 16 and row.get("role") != "bias"
            and used / avail < GRID_USE and (row.get("n_elements") or 0) >= 4 * avail):
        out.append(f"wasted grid: {used} of {avail} levels used")
    return out
