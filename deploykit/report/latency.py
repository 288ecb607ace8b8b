"""Host latency of each artifact for the record and the report, measured where a runtime exists.

TFLite: a short ``deploykit.runners.litert_bench`` timing with LiteRT (XNNPACK, one thread), in this process since
convert has LiteRT loaded already. Core ML: no runtime off Apple hardware, so the op-count estimate
(``coreml_cost``), labelled as such. A figure that cannot be had is recorded with the reason, never
failing the conversion: latency is information, not a check.
"""

from __future__ import annotations

from pathlib import Path

WARMUP = 3
RUNS = 20  # a few milliseconds for the small models convert usually sees; `deploykit bench` for more


def host_latency(artifact, path: Path) -> dict:
    """The ``latency`` entry of ``artifact`` (a ``types.Artifact``) whose file is at ``path``."""
    if artifact.target == "coreml":
        from deploykit.runners import coreml_cost

        try:
            return coreml_cost.estimate(path)
        except Exception as exc:  # noqa: BLE001  (an op the evaluator cannot load: no estimate, say why)
            return {"source": coreml_cost.SOURCE, "label": coreml_cost.LABEL, "unavailable": _why(exc)}
    if artifact.target == "executorch":
        from deploykit.runners.executorch_bench import time_pte

        try:  # the ExecuTorch runtime in a child process, as parity runs it: a crash costs only the figure
            return {"source": "executorch", **time_pte(path, threads=1, warmup=WARMUP, runs=RUNS)}
        except Exception as exc:  # noqa: BLE001
            return {"source": "executorch", "unavailable": f"the ExecuTorch runtime could not time it: {_why(exc)}"}
    if artifact.target != "tflite":
        return {"source": None, "unavailable": f"no host latency measurement for {artifact.target} artifacts"}
    if artifact.select_tf_ops:
        return {"source": "litert", "unavailable": "needs Select-TF ops, which stock LiteRT cannot run"}
    from deploykit.runners.litert_bench import time_in_process
    from deploykit.core.noise import capture_output

    try:
        with capture_output():  # LiteRT announces its delegate on stderr
            return {"source": "litert", **time_in_process(path, threads=1, warmup=WARMUP, runs=RUNS)}
    except Exception as exc:  # noqa: BLE001  (LiteRT raises RuntimeError / ValueError for a model it cannot run)
        return {"source": "litert", "unavailable": f"LiteRT could not run it: {_why(exc)}"}


def _why(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no message'}"[:300]
