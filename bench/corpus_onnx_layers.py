"""The `onnx` wheel's single-layer graphs (`onnx/backend/test/data/pytorch-converted` and `pytorch-operator`,
PyTorch layers exported at opsets 6-12, each with its own input and expected output) through
`deploykit convert --to tflite,coreml`, as a user would; writes bench/results/corpus-onnx-layers.{json,md} and
the section "ONNX single-layer graphs (onnx wheel)" of bench/results/corpus.md.

    nice -n 10 .venv/bin/python -m bench.corpus_onnx_layers                       # every graph, then tabulates
    nice -n 10 .venv/bin/python -m bench.corpus_onnx_layers --only test_GLU,test_operator_repeat
    .venv/bin/python -m bench.corpus_onnx_layers --tabulate                       # the records already written

Each graph is one `deploykit convert model.onnx --to tflite,coreml --data data.npz --json` (data.npz: the
graph's input_*.pb, one sample), in its own process group, at most ``TIMEOUT`` seconds. When both targets fail
before an artifact exists deploykit names the first failure only, so the other target is then run alone to get
its own reason. A target passes when its fp32 artifact was written and passed parity.

The reference is checked apart: the graph loaded as deploykit loads it (`deploykit.load_source`: the opset
upgrade), run by the runner deploykit's parity uses (`runner_for_source`) on the file's inputs, compared with
the file's expected output_*.pb (NaN where the file has NaN; 1e-5 absolute + 1e-4 relative otherwise).

Failures whose cause was traced are explained in ``WHY`` (keyed by graph and target), beside deploykit's own
message; one record per graph is kept in ``--records``, so a re-run of some graphs replaces their rows only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.corpus.run import RESULTS, _message

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
GROUPS = ("pytorch-converted", "pytorch-operator")
TARGETS = ("tflite", "coreml")
TIMEOUT = 600
WORK = Path("/tmp/deploykit-onnx-layers")
SECTION = "## ONNX single-layer graphs (onnx wheel)"

# What a failure comes from, where it was traced beyond deploykit's message: (graph, target) -> reason.
_FLOAT64 = ("a float64 graph whose file input is uninitialized memory (|x| up to {peak}, denormals near 7e-310): "
            "Core ML computes in float32 at most and TFLite has no float64 kernels, so both artifacts compute in "
            "float32 (the ladder's onnx2tf:float32 rung for TFLite), where those values are Inf; the artifact's "
            "outputs are Inf where the source's are finite, and no float32 artifact can pass on this input (the "
            "same graph with a float32-range input passes: test_operator_add_size1_broadcast)")
WHY: dict[tuple[str, str], str] = {
    ("test_operator_permute2", "coreml"):
        "a rank-6 Transpose (1x1x1x1x1x1): Core ML takes tensors of rank 5 at most (coremltools: 'Core ML only "
        "supports tensors with rank <= 5'), on both routes",
    **{(name, target): _FLOAT64.format(peak=peak) for target in TARGETS for name, peak in (
        ("test_operator_add_broadcast", "5.9e199"), ("test_operator_add_size1_right_broadcast", "1.4e228"),
        ("test_operator_add_size1_singleton_broadcast", "7.3e199"), ("test_operator_addconstant", "9.0e223"))},
}


def data_root() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data"


def graphs(only: set[str] | None = None) -> list[tuple[str, Path]]:
    found = []
    for group in GROUPS:
        for folder in sorted((data_root() / group).iterdir()):
            if (folder / "model.onnx").is_file() and (only is None or folder.name in only):
                found.append((group, folder))
    return found


def _tensors(folder: Path, kind: str) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    paths = sorted(glob.glob(str(folder / "test_data_set_0" / f"{kind}_*.pb")),
                   key=lambda p: int(Path(p).stem.rsplit("_", 1)[1]))
    arrays = []
    for path in paths:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(Path(path).read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays


def graph_facts(folder: Path) -> dict:
    """The file's opset, its operators, its inputs' names and shapes, as the file has them."""
    import onnx

    model = onnx.load(str(folder / "model.onnx"))
    weights = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in weights]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    ops = list(dict.fromkeys(n.op_type for n in model.graph.node))
    return {"opset": opset, "ops": ops, "input_names": names}


def write_data(folder: Path, names: list[str], out: Path) -> dict:
    """data.npz: each input_k.pb under the graph's k-th input name, in its exact shape (one sample)."""
    arrays = _tensors(folder, "input")
    np.savez(out, **dict(zip(names, arrays)))
    return {n: list(a.shape) for n, a in zip(names, arrays)}


def check_reference(folder: Path) -> dict:
    """The parity reference deploykit runs (the graph as load_source leaves it) against output_*.pb."""
    from deploykit.loaders import load_source
    from deploykit.runners import runner_for_source

    facts = graph_facts(folder)
    inputs = dict(zip(facts["input_names"], _tensors(folder, "input")))
    expected = _tensors(folder, "output")
    try:
        source = load_source(folder / "model.onnx")
        with runner_for_source(source) as runner:
            got = runner.infer(inputs)
            name = runner.name
    except Exception as exc:
        return {"passed": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    worst, passed = 0.0, True
    for spec, want in zip(source.outputs, expected):
        have = np.asarray(got[spec.name])
        if have.shape != want.shape:
            return {"passed": False, "runner": name, "error": f"{spec.name}: shape {have.shape}, file {want.shape}"}
        finite = np.isfinite(want)
        same_nan = bool(np.array_equal(np.isnan(have), np.isnan(want)))
        diff = np.abs(have[finite].astype(np.float64) - want[finite]) if finite.any() else np.zeros(1)
        worst = max(worst, float(diff.max(initial=0.0)))
        passed &= same_nan and bool(np.allclose(have[finite], want[finite], rtol=1e-4, atol=1e-5))
    return {"passed": passed, "runner": name, "max_abs_error": worst, "opset": source.opset,
            "nan": bool(any(np.isnan(w).any() for w in expected if np.issubdtype(w.dtype, np.floating)))}


def _run(command: list[str], cwd: Path, timeout: int) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        code, stdout, stderr = -1, "", f"timed out after {timeout} s"
    return code, stdout, stderr, round(time.perf_counter() - started, 1)


def _targets(record: dict | None) -> dict:
    """Per target: the fp32 artifact's verdict, error and route, or the record's failure."""
    found = {}
    for artifact in (record or {}).get("artifacts", []):
        if artifact["variant"] != "fp32":
            continue
        parity = artifact.get("parity") or {}
        errors = [o.get("max_rel_error") for o in parity.get("outputs", {}).values()
                  if isinstance(o.get("max_rel_error"), (int, float))]
        problems = [f"{name}: {o['problem']}" for name, o in parity.get("outputs", {}).items() if o.get("problem")]
        found[artifact["target"]] = {
            "passed": bool(parity.get("passed")), "max_rel_error": max(errors, default=None),
            "converter": artifact.get("converter"), "select_tf_ops": artifact.get("select_tf_ops") or [],
            "attempts": [f"{a['name']} {a['outcome']}" for a in artifact.get("attempts") or []],
            "error": None if parity.get("passed") else (
                "parity: " + "; ".join(problems or [f"max rel error {max(errors, default=float('nan')):.2e}"]))}
    for failed in (record or {}).get("failures", []):
        if failed.get("variant") == "fp32" and failed["target"] not in found:
            attempts = [f"{a['name']} {a['outcome']}" for a in failed.get("attempts") or []]
            found[failed["target"]] = {"passed": False, "error": f"{failed['error']}: {failed['message']}"[:400],
                                       "attempts": attempts}
    return found


def convert_one(group: str, folder: Path, work: Path, timeout: int) -> dict:
    name = folder.name
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    facts = graph_facts(folder)
    shapes = write_data(folder, facts["input_names"], out / "data.npz")
    source = str(folder / "model.onnx")
    command = DEPLOYKIT + ["convert", source, "--to", ",".join(TARGETS), "--data", str(out / "data.npz"),
                           "--out", str(out / "out"), "--json"]
    code, stdout, stderr, seconds = _run(command, out, timeout)
    record = None
    if stdout.strip().startswith("{"):
        record = json.loads(stdout)
    elif (out / "out" / "deploykit-report.json").is_file():
        record = json.loads((out / "out" / "deploykit-report.json").read_text())
    targets = _targets(record)
    message = _message(stderr) if code else None
    first_only = code != -1 and record is None and not targets and bool(message)
    for target in TARGETS:
        if target in targets:
            continue
        if not first_only or target == TARGETS[0]:
            targets[target] = {"passed": False, "error": message or "no artifact and no failure recorded"}
            continue
        # nothing was written: deploykit named the first failure; the other target alone names its own
        alone = DEPLOYKIT + ["convert", source, "--to", target, "--data", str(out / "data.npz"),
                             "--out", str(out / f"out-{target}"), "--json"]
        code_alone, out_alone, err_alone, more = _run(alone, out, timeout)
        seconds += more
        single = json.loads(out_alone) if out_alone.strip().startswith("{") else None
        if single is None and (out / f"out-{target}" / "deploykit-report.json").is_file():
            single = json.loads((out / f"out-{target}" / "deploykit-report.json").read_text())
        found = _targets(single).get(target)
        targets[target] = found or {"passed": False, "error": _message(err_alone) if code_alone else
                                    "no artifact and no failure recorded"}
    return {"graph": name, "group": group, "opset": facts["opset"], "ops": facts["ops"], "inputs": shapes,
            "exit": code, "seconds": seconds, "error": message,
            "source_opset": (record or {}).get("source", {}).get("opset"),
            "targets": targets, "reference": check_reference(folder)}


def _cell(target: dict) -> str:
    if not target:
        return "—"
    error = target.get("max_rel_error")
    return ("pass" if target.get("passed") else "FAIL") + ("" if error is None else f" {error:.1e}")


def _reason(row: dict, target: str) -> str:
    found = row["targets"].get(target) or {}
    if found.get("passed"):
        return ""
    why = WHY.get((row["graph"], target))
    text = (found.get("error") or "").replace("|", "/").replace("\n", " ")
    return f"{target}: " + (f"{why} (deploykit: {text[:220]})" if why else text[:300])


def _opset(row: dict) -> str:
    opset = row.get("source_opset") or (row.get("reference") or {}).get("opset") or {"file": row["opset"]}
    if "upgraded_to" in opset:
        return f"{opset['file']} -> {opset['upgraded_to']}"
    if "reference" in opset:
        return f"{opset['file']} (kept; {opset['reference']})"
    return str(opset.get("file"))


def tabulate(records: Path) -> tuple[list[dict], list[str]]:
    rows = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
    rows.sort(key=lambda r: (GROUPS.index(r["group"]), r["graph"]))
    total = len(rows)
    counts = {t: sum(bool((r["targets"].get(t) or {}).get("passed")) for r in rows) for t in TARGETS}
    both = sum(all((r["targets"].get(t) or {}).get("passed") for t in TARGETS) for r in rows)
    references = sum(bool((r.get("reference") or {}).get("passed")) for r in rows)
    upgraded = sum("upgraded_to" in (r.get("source_opset") or {}) for r in rows)
    runners = {}
    for r in rows:
        name = (r.get("reference") or {}).get("runner", "none")
        runners[name] = runners.get(name, 0) + 1
    lines = ["| target | passed | of | rate |", "| --- | --- | --- | --- |"]
    lines += [f"| {t} | {counts[t]} | {total} | {100 * counts[t] / max(total, 1):.1f} % |" for t in TARGETS]
    lines += [f"| both | {both} | {total} | {100 * both / max(total, 1):.1f} % |", "",
              f"The parity reference matched the file's own expected output on {references} of {total} graphs "
              f"(runners: {', '.join(f'{k} {v}' for k, v in sorted(runners.items()))}); {upgraded} graphs were "
              "upgraded to opset 13 when loaded.", ""]
    failures = {}  # (graph, reason) -> targets: a reason both targets share is listed once
    for r in rows:
        for t in TARGETS:
            if not (r["targets"].get(t) or {}).get("passed"):
                failures.setdefault((r["graph"], _reason(r, t).removeprefix(f"{t}: ")), []).append(t)
    if failures:
        lines += ["Failures, each with its reason:", ""]
        lines += [f"- `{graph}` on {' and '.join(targets)}: {reason}" for (graph, reason), targets in failures.items()]
        lines.append("")
    lines += ["| group | graph | opset | ops | reference vs output_0.pb | tflite | coreml | s | reason |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ref = r.get("reference") or {}
        if "max_abs_error" in ref:
            ref_cell = ("ok" if ref.get("passed") else "MISMATCH") + f" {ref['max_abs_error']:.0e}"
            ref_cell += " (NaN)" if ref.get("nan") else ""
        else:
            ref_cell = "ERROR " + (ref.get("error") or "")[:120]
        reasons = "; ".join(x for x in (_reason(r, t) for t in TARGETS) if x)
        lines.append("| " + " | ".join(str(c) for c in (
            r["group"].removeprefix("pytorch-"), r["graph"].removeprefix("test_"), _opset(r), " ".join(r["ops"]),
            ref_cell, _cell(r["targets"].get("tflite")), _cell(r["targets"].get("coreml")), r["seconds"],
            reasons)) + " |")
    return rows, lines


def write_section(lines: list[str], path: Path) -> None:
    """Replace (or append) the section of corpus.md, up to the next heading of its level."""
    text = path.read_text() if path.is_file() else ""
    body = [SECTION, "",
            "Written by `python -m bench.corpus_onnx_layers` (full table: `corpus-onnx-layers.md`, records: "
            "`corpus-onnx-layers.json`): every graph of the `onnx` wheel's `pytorch-converted` and `pytorch-operator` "
            "backend test data, `deploykit convert model.onnx --to tflite,coreml --data <its input_*.pb> --json`, one "
            f"at a time, {TIMEOUT // 60} minutes at most. A target passes when its fp32 artifact passed parity on the "
            "file's own input (max rel error shown); the reference column compares deploykit's parity reference with "
            "the file's expected output.", ""] + lines
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + "\n".join(body) + "\n" + (text[end:] if end >= 0 else "")
    path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated graph names (test_GLU, ...)")
    parser.add_argument("--tabulate", action="store_true", help="only tabulate the records already written")
    parser.add_argument("--work", type=Path, default=WORK, help="where the artifacts are written")
    parser.add_argument("--records", type=Path, default=WORK / "records", help="one GRAPH.json per graph")
    parser.add_argument("--timeout", type=int, default=TIMEOUT)
    args = parser.parse_args(argv)
    if not args.tabulate:
        args.records.mkdir(parents=True, exist_ok=True)
        for group, folder in graphs(set(args.only.split(",")) if args.only else None):
            row = convert_one(group, folder, args.work, args.timeout)
            (args.records / f"{folder.name}.json").write_text(json.dumps(row, indent=2) + "\n")
            print(json.dumps({k: row[k] for k in ("graph", "exit", "seconds")}
                             | {t: _cell(row["targets"].get(t)) for t in TARGETS}
                             | {"reference": row["reference"].get("passed")}), flush=True)
    rows, lines = tabulate(args.records)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "corpus-onnx-layers.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    (RESULTS / "corpus-onnx-layers.md").write_text("\n".join(["# " + SECTION[3:], ""] + lines) + "\n")
    write_section(lines, RESULTS / "corpus.md")
    print("\n".join(lines[:5]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
