"""Core ML fp16 keeps the variance of a written-out normalization in fp32, and the evaluator computes it so.

The model: activations in the thousands, a LayerNorm over 512 features written out as ONNX exports of
opset < 17, ConvNeXt's channels-first LayerNorm and RMSNorm reach Core ML (mean, x - mean, pow 2, mean,
+ eps, sqrt, div: coremltools fuses none of them into ``layer_norm``), a fused ``nn.LayerNorm`` and a
softmax over 4000 classes. In plain fp16 the square (x - mean)^2 overflows to inf past |x - mean| = 256
although every value the source computes outside it is in fp16 range; the output is then garbage.
deploykit's fp16 program keeps square -> mean -> + eps -> sqrt in fp32 and only that.
"""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.converters import coreml_common
from deploykit.pipeline.verify import verify
from deploykit import convert

FP16_MAX = 65504.0
KEPT = ["add", "pow", "reduce_mean", "sqrt"]  # the square, the mean of squares, + eps, the root


def _module():
    import torch

    class Sensitive(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = torch.nn.Linear(64, 512)
            with torch.no_grad():
                self.embed.weight.mul_(400.0)  # activations in the thousands: |x - mean| up to ~2000
            self.gamma = torch.nn.Parameter(torch.rand(512) + 0.5)
            self.beta = torch.nn.Parameter(torch.rand(512) - 0.5)
            self.mix = torch.nn.Linear(512, 512)
            self.norm = torch.nn.LayerNorm(512)  # fused: coremltools' layer_norm, stays fp16
            self.head = torch.nn.Linear(512, 4000)

        def forward(self, x):
            h = self.embed(x)
            mean = h.mean(-1, keepdim=True)
            d = h - mean
            h = d / torch.sqrt(d.pow(2).mean(-1, keepdim=True) + 1e-5) * self.gamma + self.beta
            h = self.norm(self.mix(h))
            return torch.softmax(self.head(h) * 4.0, dim=-1)

    return Sensitive().eval()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("fp16_sensitive")
    source = folder / "sensitive.pt2"
    torch.export.save(torch.export.export(_module(), (torch.rand(1, 16, 64) * 2 - 1,)), source)
    fixed = convert(source, to="coreml", out=folder / "fixed", quantize="fp16")  # parity checked: must pass
    with pytest.MonkeyPatch.context() as patch:  # coremltools' own FLOAT16: every op it can type fp16
        patch.setattr(coreml_common, "keeps_fp32", lambda op: False)
        plain = convert(source, to="coreml", out=folder / "plain", quantize="fp16", verify=False)
    return source, folder, fixed, plain


def _artifact(report, variant):
    return next(a for a in report.artifacts if a.variant == variant)


def test_plain_fp16_fails_and_the_fp32_variance_passes(built):
    source, folder, fixed, plain = built
    plain_report = verify(source, folder / "plain" / _artifact(plain, "fp16").path, profile="fp16", samples=4)
    assert not plain_report
    fixed_report = verify(source, folder / "fixed" / _artifact(fixed, "fp16").path, profile="fp16", samples=4)
    assert fixed_report
    bad = plain_report.outputs[0].metrics
    good = fixed_report.outputs[0].metrics
    # Broken, not drifting (a softmax is bounded: its SNR is a peak SNR against the range, parity.ranges)
    assert bad["cosine_similarity"] < 0.99 and bad["max_rel_error"] > 0.1, bad
    assert good["max_rel_error"] < 1e-2 and good["snr_db"] > 50, good  # within the old fp16 bound too


def test_record_lists_the_fp32_ops(built):
    _, _, fixed, plain = built
    record = _artifact(fixed, "fp16").quantization
    assert record["scheme"] == "fp16" and record["weights"] == record["activations"] == "float16"
    assert record["fp32_ops"] == KEPT  # not layer_norm, softmax, linear: only the variance
    assert record["fp32_rule"] == coreml_common.FP32_VARIANCE_OPS
    assert _artifact(plain, "fp16").quantization["fp32_ops"] == []
    assert _artifact(fixed, "fp16").op_histogram["layer_norm"] == 1


def test_evaluator_computes_each_op_in_its_declared_dtype(built):
    from deploykit.runners.coreml_eval import evaluate
    from deploykit.runners.coreml_eval.api import load_program

    _, folder, fixed, plain = built
    x = {"x": np.random.default_rng(1).uniform(-1, 1, (1, 16, 64)).astype(np.float32)}
    fixed_path = folder / "fixed" / _artifact(fixed, "fp16").path
    program = load_program(fixed_path)
    declared = {o.name: (step.type, o.dtype.name) for step in program.steps for o in step.outputs}
    fp32_types = sorted({t for t, d in declared.values() if d == "fp32" and t != "cast"})
    assert fp32_types == _artifact(fixed, "fp16").quantization["fp32_ops"]
    assert {d for t, d in declared.values() if t not in KEPT + ["cast"]} == {"fp16"}

    run = evaluate(fixed_path, x, keep_intermediates=True)
    for name, value in run.intermediates.items():  # fp16 results are float16, fp32 results float32
        assert value.dtype == {"fp16": np.float16, "fp32": np.float32}[declared[name][1]], name
    (square,) = [n for n, (t, d) in declared.items() if t == "pow"]
    step = next(s for s in program.steps if s.outputs[0].name == square)
    base = run.intermediates[step.inputs["x"][0].name]  # the fp16 x - mean, cast to fp32
    assert base.dtype == np.float32 and np.array_equal(base, base.astype(np.float16).astype(np.float32))
    assert np.array_equal(run.intermediates[square], np.square(base))  # computed in fp32, not rounded
    assert np.isfinite(run.intermediates[square]).all() and run.intermediates[square].max() > FP16_MAX

    plain_run = evaluate(folder / "plain" / _artifact(plain, "fp16").path, x, keep_intermediates=True)
    (plain_square,) = [n for n, t in plain_run.op_types.items() if t == "pow"]
    assert plain_run.intermediates[plain_square].dtype == np.float16
    assert np.isinf(plain_run.intermediates[plain_square]).any()  # the overflow the fp32 ops avoid


def test_fp16_weights_keep_half_the_size(built):
    _, _, fixed, _ = built
    fp32, fp16 = _artifact(fixed, "fp32"), _artifact(fixed, "fp16")
    assert 0.49 <= fp16.size_bytes / fp32.size_bytes <= 0.51, (fp16.size_bytes, fp32.size_bytes)
    assert fp16.size_limit["bits_per_weight"] == 16 and fp16.size_limit["ratio"] <= 1.02
