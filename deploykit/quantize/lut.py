"""``lut8`` / ``lut6`` / ``lut4`` / ``lut2``: palettized weights ("deep compression").

Core ML only: ``palettize_weights`` with tables from deploykit's 1-D k-means (lut_plan.py). By
default each conv / linear weight gets one table, tables per group of output channels (iOS18 /
macOS15) or stays fp16, chosen per layer within a size budget (``--lut-budget``, default 8 % of the
index bytes and at least 4 KB; lut_plan.py says why). ``--lut-budget 0`` gives one table per tensor everywhere, as
coremltools' default does; ``--lut-group-size N`` one table per N output channels everywhere.
TFLite has no look-up-table weights.
"""

from __future__ import annotations

from deploykit.quantize.lut_plan import FLOAT, LayerWeight, lut_function, plan_tables

PLANNED_OPS = ("conv", "linear")  # output channels first in both; other weights get one table per tensor


def bits(scheme: str) -> int:
    return int(scheme[3:])


def coreml(mlmodel, options, op_name_configs, cto, scheme: str):
    nbits = bits(scheme)
    threshold = options.keep_float.coreml_threshold(scheme)
    tables = lut_function(nbits)
    if options.lut_group_size is not None:
        op = cto.OpPalettizerConfig(mode="custom", lut_function=tables, granularity="per_grouped_channel",
                                    group_size=options.lut_group_size, weight_threshold=threshold)
        described = {"tables": f"one per {options.lut_group_size} output channels"}
        configs = dict(op_name_configs)
    else:
        op = cto.OpPalettizerConfig(mode="custom", lut_function=tables, granularity="per_tensor", weight_threshold=threshold)
        plan = plan_tables(_planned_weights(mlmodel, cto, threshold, set(op_name_configs)), nbits,
                           options.lut_budget / 100, grouped=options.lut_grouped)
        configs = {**op_name_configs, **_configs(plan, cto, tables, threshold)}
        described = {"tables": "chosen per layer within the size budget", "budget_percent": options.lut_budget,
                     **plan.describe()}
    config = cto.OptimizationConfig(global_config=op, op_name_configs=configs)
    described = {"weights": f"{nbits}-bit palettized (k-means, {1 << nbits}-entry fp16 tables)", **described,
                 "activations": "float16"}
    return cto.palettize_weights(mlmodel, config), described


def _planned_weights(mlmodel, cto, threshold: int, kept_ops: set) -> list[LayerWeight]:
    """Weights of conv / linear ops, by the name of their const, except those --keep-float keeps."""
    layers = []
    for name, meta in cto.get_weights_metadata(mlmodel, weight_threshold=threshold).items():
        children = meta.child_ops
        # "cast": the fp16-weights, float32-compute program (coreml_fp16_weights) casts each conv / linear weight
        # where it is read; without it the plan missed every such weight (PP-OCRv4's recogniser: 39 of 47)
        if (meta.val.ndim >= 2 and children and all(c.op_type in PLANNED_OPS + ("cast",) for c in children)
                and not any(c.name in kept_ops for c in children)):
            layers.append(LayerWeight(name, meta.val))
    return layers


def _configs(plan, cto, tables, threshold: int) -> dict:
    configs = {}
    for name, group in plan.groups.items():
        if group == FLOAT:
            configs[name] = None
        elif group == plan.channels[name]:
            configs[name] = cto.OpPalettizerConfig(mode="custom", lut_function=tables, granularity="per_tensor",
                                                   weight_threshold=threshold)
        else:
            configs[name] = cto.OpPalettizerConfig(mode="custom", lut_function=tables, granularity="per_grouped_channel",
                                                   group_size=group, weight_threshold=threshold)
    return configs
