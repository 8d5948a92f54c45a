"""QuantLens benchmark infrastructure (model generation, baselines, measurement)."""
