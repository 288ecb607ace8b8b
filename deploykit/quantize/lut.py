"""``lut8`` / ``lut6`` / ``lut4`` / ``lut2``: palettized weights ("deep compression").

Core ML only: ``palettize_weights`` with k-means clustering, one look-up table of 2^n fp16 values
per weight tensor, or per group of output channels with --lut-group-size (iOS18 / macOS15).
TFLite has no look-up-table weights.
"""

from __future__ import annotations


def bits(scheme: str) -> int:
    return int(scheme[3:])


def coreml(mlmodel, options, op_name_configs, cto, scheme: str):
    nbits = bits(scheme)
    if options.lut_group_size is not None:
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_grouped_channel",
                                    group_size=options.lut_group_size, weight_threshold=options.keep_float.coreml_threshold(scheme))
        tables = f"per group of {options.lut_group_size} output channels"
    else:
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor",
                                    weight_threshold=options.keep_float.coreml_threshold(scheme))
        tables = "per tensor"
    config = cto.OptimizationConfig(global_config=op, op_name_configs=op_name_configs)
    described = {"weights": f"{nbits}-bit palettized (k-means, {1 << nbits}-entry fp16 tables {tables})", "activations": "float16"}
    return cto.palettize_weights(mlmodel, config), described
