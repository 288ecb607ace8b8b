"""Core ML int8 (W8A8) on Linux: activation ranges from the numpy evaluator, pairs and weights by coremltools.

One real conversion through the CLI (a small residual PyTorch net: conv, add, relu, max_pool, linear),
then what the artifact holds, how close it stays to the source, and where its scales come from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_convert_cmd import run
from tests.conftest import TORCH_SHAPE, save_pt2

SAMPLES = 16
INT8, UINT8 = 21, 31  # MIL DataType


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coreml_w8a8")
    source = save_pt2("resnet", folder)
    calibration = np.random.default_rng(0).random((SAMPLES, *TORCH_SHAPE[1:]), dtype=np.float32)
    np.save(folder / "cal.npy", calibration)
    result = run("convert", source, "--to", "coreml", "--quantize", "fp16,coreml=int8", "--calibration",
                 folder / "cal.npy", "--coreml-target", "iOS17", "--out", folder / "dist", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout)
    artifacts = {a["variant"]: a for a in record["artifacts"]}
    return source, calibration, folder / "dist", artifacts


def _program_ops(path):
    from deploykit.formats.coreml.spec import load_spec, main_block

    return list(main_block(load_spec(path)).operations)


def test_the_artifact_quantizes_activations_and_weights(converted):
    _, _, dist, artifacts = converted
    assert list(artifacts) == ["fp32", "fp16", "int8"]
    int8 = artifacts["int8"]
    ops = _program_ops(dist / int8["path"])
    types = [op.type for op in ops]
    quantizes = [op for op in ops if op.type == "quantize"]
    # every conv / linear / add / max_pool input is quantized, and the outputs of the patterns coremltools
    # recognises (conv, conv + relu, add + relu, max_pool, linear): 12 activations on this net
    assert len(quantizes) == 12 and types.count("dequantize") >= 12
    # int8 with a zero point; a non-negative activation (zero point -128) becomes uint8 without one (coremltools'
    # nullify_redundant_quantization_zero_point): the ReLU outputs here
    dtypes = [op.outputs[0].type.tensorType.dataType for op in quantizes]
    assert set(dtypes) == {INT8, UINT8} and dtypes.count(UINT8) >= 5
    consumers = {b.name for op in ops if op.type in ("conv", "linear", "add", "max_pool") for key in ("x", "y")
                 if key in op.inputs for b in op.inputs[key].arguments}
    producers = {op.outputs[0].name: op.type for op in ops}
    assert {producers[name] for name in consumers} == {"dequantize"}  # no float activation enters a layer
    # int8 weights: every conv and linear weight is a constexpr_affine_dequantize of int8 data (iOS17)
    layers = [op for op in ops if op.type in ("conv", "linear")]
    assert types.count("constexpr_affine_dequantize") == len(layers) == 7
    assert all(producers[op.inputs["weight"].arguments[0].name] == "constexpr_affine_dequantize" for op in layers)
    record = int8["quantization"]
    assert record["weights"] == "int8 linear symmetric per-channel"
    assert record["activations"] == ("int8 linear per-tensor (scale and zero point; uint8 without one where non-negative) "
                                     "(12 activations with quantize / dequantize pairs)")
    assert record["quantized_activations"] == 12 and record["uncompressed_weights"] == []
    assert record["calibration"]["samples"] == SAMPLES and record["calibration"]["source"].endswith("cal.npy")
    assert record["statistics"] == "deploykit Core ML evaluator (coremltools' predict needs macOS)"
    assert record["engine"].startswith("coremltools.optimize.coreml")
    assert int8["deployment_target"] == "iOS17"
    assert int8["size_bytes"] < artifacts["fp16"]["size_bytes"] < artifacts["fp32"]["size_bytes"]


def test_the_evaluator_output_stays_close_to_the_source(converted):
    import torch

    from deploykit.parity import metrics
    from deploykit.parity.profiles import get_profile
    from deploykit.runners.coreml_eval import evaluate

    source, calibration, dist, artifacts = converted
    module = torch.export.load(str(source)).module()
    limits = {t.metric: t.limit for t in get_profile("int8").thresholds}
    reference, actual = [], []
    for sample in calibration:
        with torch.no_grad():
            reference.append(module(torch.from_numpy(sample[None])).numpy())
        actual.append(next(iter(evaluate(dist / artifacts["int8"]["path"], {"x": sample[None]}).values())))
    reference, actual = np.concatenate(reference).astype(np.float64), np.concatenate(actual).astype(np.float64)
    cosine, snr = metrics.cosine_similarity(reference, actual), metrics.snr_db(reference, actual)
    assert cosine >= limits["cosine_similarity"] and snr >= limits["snr_db"], (cosine, snr)
    assert snr < metrics.snr_db(reference, np.concatenate([  # the activations cost accuracy: not an fp16 copy
        next(iter(evaluate(dist / artifacts["fp16"]["path"], {"x": s[None]}).values())) for s in calibration]))
    parity = artifacts["int8"]["parity"]
    assert parity["passed"] and parity["profile"] == "int8"


def test_activation_scales_are_the_evaluator_ranges_on_the_calibration_data(converted):
    """With lo = min(rmin, 0), hi = max(rmax, 0): scale = (hi - lo) / 255 and zero point = round((-128 hi - 127 lo) /
    (hi - lo)) (int8, linear), rmin / rmax the min / max over all calibration samples of the fp16 program's tensor
    as the evaluator computes it.

    coremltools' default pipeline then rewrites each quantized ``add`` for the backend
    (distributive_quantized_binary_op_scale_normalization): its y input is dequantized with scale 1, its x input
    with s_x / s_y, and the quantize after it (and the relu between) with s_z / s_y. There the activation's scale
    is the one its dequantize restores, so each activation's scale is the quantize's or its dequantize's."""
    from deploykit.runners.coreml_eval import evaluate, load_program

    _, calibration, dist, artifacts = converted
    ranges: dict[str, tuple[float, float]] = {}
    for sample in calibration:
        evaluation = evaluate(dist / artifacts["fp16"]["path"], {"x": sample[None]}, keep_intermediates=True)
        for name, value in evaluation.intermediates.items():
            low, high = ranges.get(name, (np.inf, -np.inf))
            ranges[name] = (min(low, float(value.min())), max(high, float(value.max())))
    program = load_program(dist / artifacts["int8"]["path"])

    def value(node, key):
        if key not in node.inputs:
            return 0.0
        binding = node.inputs[key][0]
        return float(program.constants[binding.name] if binding.name else binding.value)

    def scale_of(node):
        return value(node, "scale")

    restored: dict[str, list[float]] = {}
    for node in program.steps:
        if node.type == "dequantize":
            restored.setdefault(node.inputs["input"][0].name, []).append(scale_of(node))
    direct = normalized = 0
    for node in program.steps:
        if node.type != "quantize":
            continue
        activation = node.inputs["input"][0].name
        low, high = (float(np.float16(v)) for v in ranges[activation])  # coremltools reads the ranges as fp16
        low, high = min(low, 0.0), max(high, 0.0)
        expected = (high - low) / 255
        zero_point = np.clip(np.round((-128 * high - 127 * low) / (high - low)), -128, 127)
        stored = value(node, "zero_point") - (128 if node.outputs[0].dtype.name == "uint8" else 0)  # as int8
        assert abs(stored - zero_point) <= 1, activation  # coremltools computes it in fp16
        if scale_of(node) == pytest.approx(expected, rel=2e-3):
            direct += 1
        else:
            assert any(s == pytest.approx(expected, rel=2e-3) for s in restored[node.outputs[0].name]), activation
            normalized += 1
    assert (direct, normalized) == (10, 2)  # the two residual adds (add + relu) were normalized
    assert sum(s == 1.0 for scales in restored.values() for s in scales) == 2


def test_a_target_below_ios17_is_a_usage_error(tmp_path):
    source = save_pt2("resnet", tmp_path)
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((4, *TORCH_SHAPE[1:]), dtype=np.float32))
    result = run("convert", source, "--to", "coreml", "--quantize", "int8", "--calibration", tmp_path / "cal.npy",
                 "--out", tmp_path / "dist")
    assert result.returncode == 2, result.stderr[-1000:]
    text = " ".join((result.stdout + result.stderr).split())
    assert "Core ML int8 (8-bit activations) needs --coreml-target iOS17 or later (got iOS16)" in text
    assert "Traceback" not in text and not (tmp_path / "dist").exists()


@pytest.mark.heavy  # a whole conversion of its own (about 20 s quiet, a minute on shared cores): run by bench/ and -m heavy
def test_an_activation_that_stays_zero_gets_scale_one(tmp_path):
    """A ReLU that never fires on the calibration data (range [0, 0]): coremltools' suffix pass would write scale 0,
    which the quantize op refuses; its prefix pass's own remedy, scale 1, keeps the zero exact."""
    import torch
    from torch import nn

    from deploykit import convert
    from deploykit.runners.coreml_eval import load_program

    class DeadBranch(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.stem, self.dead, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)
            with torch.no_grad():
                self.dead.bias.fill_(-100.0)  # far below anything the small weights add: relu(dead(.)) == 0

        def forward(self, x):  # the dead ReLU feeds an op without pairs, so the suffix pass quantizes it
            a = torch.relu(self.stem(x))
            d = torch.relu(self.dead(a))
            return torch.cat([torch.relu(self.head(a)).mean(dim=(2, 3)), d.mean(dim=(2, 3))], dim=1)

    source = tmp_path / "dead.pt2"
    torch.export.save(torch.export.export(DeadBranch().eval(), (torch.rand(TORCH_SHAPE),)), source)
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((8, *TORCH_SHAPE[1:]), dtype=np.float32))
    report = convert(source, to="coreml", out=tmp_path / "dist", quantize="int8", calibration=tmp_path / "cal.npy",
                     coreml_target="iOS17")
    int8 = report.artifacts[-1]
    assert int8.variant == "int8" and int8.parity["passed"]
    program = load_program(tmp_path / "dist" / int8.path)
    scales = {}
    for node in program.steps:
        if node.type == "quantize":
            binding = node.inputs["scale"][0]
            scales[node.inputs["input"][0].name] = float(program.constants[binding.name] if binding.name else binding.value)
    assert sorted(scales.values()).count(1.0) == 1 and all(0 < v < 1 for v in scales.values() if v != 1.0), scales
    dead = next(name for name, scale in scales.items() if scale == 1.0)
    node = next(n for n in program.steps if n.type == "quantize" and n.inputs["input"][0].name == dead)
    zero = node.inputs["zero_point"][0] if "zero_point" in node.inputs else None
    assert node.outputs[0].dtype.name == "int8" and (zero is None or (program.constants[zero.name] if zero.name else zero.value) == 0)


@pytest.mark.parametrize("dtype, zero_point", [("int8", None), ("int8", -3), ("uint8", 128)])
def test_evaluator_quantize_is_the_mil_formula(tmp_path, dtype, zero_point):
    """fp16 input and scale as the W8A8 program has them: clip(round_half_even(x / scale) + zero_point), with
    exact ties, values far outside the range (clipped), and a scale that is not a power of two."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.optimize import _utils as optimize_utils

    from deploykit.runners.coreml_eval import evaluate
    from tests.runners.coreml_eval.coreml_eval_support import save_mil

    low, high = (-128, 127) if dtype == "int8" else (0, 255)
    zp = 0 if zero_point is None else zero_point
    ties = (np.arange(low - 4, high + 4) - zp + 0.5) / 8  # (k + 0.5) * 2^-3: exact in fp16, exact ties
    noise = np.random.default_rng(1).uniform(-40, 40, 256)
    x = np.concatenate([ties, noise, [-1e4, 1e4, 0.0]]).astype(np.float16)[None]
    results = {}
    for scale in (np.float16(2**-3), np.float16(0.0371)):
        zero = None if zero_point is None else np.array(zero_point, dtype=dtype)

        def pair(scale, zero):
            def build(x):
                q = mb.quantize(input=x, scale=scale, zero_point=zero, output_dtype=dtype)
                return q, mb.dequantize(input=q, scale=scale, zero_point=zero)
            return build

        path = save_mil(pair(scale, zero), [(x.shape, types.fp16)], tmp_path / f"q{scale}.mlpackage", target="iOS17")
        q, back = evaluate(path, {"x": x}).values()
        exact = np.clip(np.round(x.astype(np.float64) / float(scale)) + zp, low, high)
        np.testing.assert_array_equal(q, exact)
        mil = optimize_utils.quantize_by_scale_and_zp(x.astype(np.float32), np.float32(scale), zero,
                                                      types.string_to_builtin(dtype))
        np.testing.assert_array_equal(q, mil)  # coremltools' own value inference of the op
        np.testing.assert_array_equal(back, ((exact - zp) * np.float32(scale)).astype(np.float16))
        results[float(scale)] = q
    tied = results[2**-3][0, :len(ties)].astype(np.int64)
    inside = (tied > low) & (tied < high)
    assert np.all((tied[inside] - zp) % 2 == 0)  # half to even: every tie inside the range rounds to an even x / scale


def test_evaluator_quantize_rounds_the_exact_quotient_in_fp32_programs(tmp_path):
    """Float32 inputs one or two steps from (k + 0.5) * scale: float32 division lands their quotient on the tie
    (and rounds it to even), the exact quotient is not a tie. The evaluator rounds the exact quotient."""
    from coremltools.converters.mil import Builder as mb

    from deploykit.runners.coreml_eval import evaluate
    from tests.runners.coreml_eval.coreml_eval_support import save_mil

    scale = np.float32(0.0371)
    ties = ((np.arange(-120, 120) + 0.5) * np.float64(scale)).astype(np.float32)
    x = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])[None]
    path = save_mil(lambda x: mb.quantize(input=x, scale=scale, output_dtype="int8"), [x.shape], tmp_path / "q.mlpackage",
                    target="iOS17")
    q = next(iter(evaluate(path, {"x": x}).values()))
    exact = np.clip(np.round(x.astype(np.float64) / np.float64(scale)), -128, 127)
    np.testing.assert_array_equal(q, exact)
    float32_division = np.round(x / scale)
    assert np.count_nonzero(float32_division != exact) == 22  # what dividing in float32 got wrong here
