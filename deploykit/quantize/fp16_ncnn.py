"""NCNN fp16: the fp32 pair's tagged weights stored as fp16, and the estimate that picks layers to keep in float32
when the all-fp16 pair fails its profile (``quantize.fp16_rescue``).

deploykit writes the fp16 .bin from the fp32 one (``formats.ncnn.weights.to_fp16``) rather than running pnnx again
with ``fp16=1``: the two have the same layout and bytes, but for weights too small for a normal fp16, which pnnx
flushes to zero and deploykit keeps (subnormal halves, which ncnn reads), and writing it here is what lets single layers stay float32: ncnn reads
each weight's storage from its own tag, so a .bin may mix them. When the .bin holds a layer whose reads deploykit
does not know, ``derivable`` says no and the target runs pnnx with ``fp16=1`` instead (no rescue then).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from deploykit.formats.ncnn import pair, param, weights
from deploykit.quantize.fp16_mixed import SampledEstimate


def spans_of(base: Path):
    param_file, bin_file = pair.files(base)
    return weights.tagged_blobs(param.read(param_file), bin_file.read_bytes())


def write_fp16(base: Path, out: Path, keep=frozenset(), spans=None) -> dict:
    """``out``: a pair folder with the fp32 artifact ``base``'s graph and its weights in fp16 but for ``keep``."""
    param_file, bin_file = pair.files(base)
    spans = spans if spans is not None else spans_of(base)
    out.mkdir(parents=True)
    shutil.copyfile(param_file, out / pair.PARAM)
    (out / pair.BIN).write_bytes(weights.to_fp16(bin_file.read_bytes(), spans, frozenset(keep)))
    return {"scheme": "fp16", "weights": "float16", "activations": "float16",
            "engine": "deploykit: the fp32 pair's tagged weights as fp16 (biases and norms stay float32, as ncnn reads them)",
            "runtime_options": {"use_fp16_storage": True, "use_fp16_packed": True, "use_fp16_arithmetic": True}}


class NcnnFp16Estimate(SampledEstimate):
    """Runs the pair with chosen layers' weights in fp16 through the ncnn runtime, fp16 arithmetic on as the
    artifact runs."""

    unit = "layer"

    def __init__(self, base: Path, feeds: list[dict], floors: dict[str, float]):
        self.base = Path(base)
        self.spans = spans_of(self.base)
        self.layers = tuple(self.spans or ())
        self.unit_bytes = {name: sum(4 * count for _, count in items) for name, items in (self.spans or {}).items()}
        self._start(feeds, floors)

    def selector_keys(self, kept) -> tuple[str, ...]:
        return tuple(kept)

    def _outputs(self, kept, feeds) -> list[dict]:
        from deploykit.runners.ncnn_runner import NcnnRunner

        if kept is None:
            return _run(NcnnRunner(self.base, fp16=False), feeds)
        with tempfile.TemporaryDirectory(prefix="deploykit-ncnn-fp16-") as scratch:
            folder = Path(scratch) / "candidate.ncnn"
            write_fp16(self.base, folder, kept, self.spans)
            return _run(NcnnRunner(folder, fp16=True), feeds)


def _run(runner, feeds) -> list[dict]:
    with runner:
        return [runner.infer(feed) for feed in feeds]
