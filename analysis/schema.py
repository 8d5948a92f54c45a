"""Column lists of the three tables :func:`analysis.analyze` returns.

The README documents each column; tests check that every table has exactly
these columns, so a rename breaks loudly.
"""

__all__ = ["LAYER_COLUMNS", "CHANNEL_COLUMNS", "HISTOGRAM_COLUMNS", "STATUSES"]

#: ``status`` values: a quantized tensor, or why a weight has no parameters.
STATUSES = ("quantized", "left_in_float", "op_not_quantized", "not_matched", "unmatched_quant", "unreadable")

LAYER_COLUMNS = [
    "variant", "layer", "order", "fp32_name", "quant_tensor", "status", "reason", "match_method",
    "role", "storage", "quant_op", "consumer_ops", "consumers", "quant_dtype", "fp32_dtype",
    "fp32_shape", "n_elements", "granularity", "per_channel", "axis", "block_size", "n_scales",
    "scale", "scale_min", "scale_max", "zero_point", "zero_point_min", "zero_point_max",
    "q_min", "q_max", "fp32_min", "fp32_max", "dq_min", "dq_max", "mse", "max_abs_err",
    "sqnr_db", "cosine", "clipped_frac", "at_limits_frac", "levels_used", "levels_available",
    "absmax_over_rms", "zp_out_of_range", "scale_zero", "scale_negative", "scale_nonfinite",
    "fp32_nonfinite", "fp32_bytes", "quant_bytes", "notes", "diagnostics",
]

CHANNEL_COLUMNS = [
    "variant", "fp32_name", "quant_tensor", "channel", "n", "fp32_min", "fp32_max", "dq_min",
    "dq_max", "scale_min", "scale_max", "zero_point_min", "zero_point_max", "mse", "sqnr_db",
]

HISTOGRAM_COLUMNS = ["variant", "fp32_name", "quant_tensor", "kind", "bin", "left", "right", "count"]
