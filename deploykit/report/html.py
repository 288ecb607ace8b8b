"""``report.html``: one self-contained page per conversion (or build) from its record.

Everything is inline: the stylesheet in ``<style>``, each plot as an ``<svg>`` element (``plots``); the
page has no script and names no external URL, so it opens the same from a CI artifact, an e-mail or a
machine without network. Every string from the record is escaped: model, layer and output names come
from untrusted files.

Stable hooks for tests and tools: ``section#source``, ``section#variants`` with one ``tr.variant`` per
artifact (``data-*`` attributes hold the record's numbers), ``section#compatibility`` with one ``tr.accelerator``
per artifact and accelerator (``report.compatibility``), and ``figure.plot#plot-...`` per plot. A build page with
several models suffixes the ids with ``-MODEL``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from deploykit.inspection.model import LAYER_TYPE_TITLES
from deploykit.inspection.model import LAYER_TYPES as INSPECTED_TYPES
from deploykit.report import cells, compatibility, plots
from deploykit.report.style import STYLE

METRICS = (  # (record key, column title, format)
    ("max_rel_error", "max rel. error", "{:.2e}"),
    ("cosine_similarity", "cosine", "{:.6f}"),
    ("snr_db", "SNR (dB)", "{:.1f}"),
    ("top1_agreement", "top-1 agreement", "{:.1%}"),
)
LAYER_TYPES = tuple((key, LAYER_TYPE_TITLES[key]) for key in INSPECTED_TYPES)  # the inspection's own rows and titles
LATENCY_NOTE = ("TFLite latency is measured with LiteRT on this machine (XNNPACK delegate, one thread, the median of "
                "the timed runs after warm-up). Core ML latency is an estimate (op-count cost model, no Core ML "
                "runtime on this machine): MACs, bytes moved and op count of the ML Program, with rates calibrated "
                "against LiteRT on this machine (bench/results/coreml_cost_calibration.md). Both are host figures "
                "for comparing variants, not device figures.")


@dataclass(frozen=True)
class Row:
    """One artifact of the variants table, with what the build measured on it."""

    artifact: dict
    latency: dict | None
    accuracy: dict | None

    @property
    def variant(self) -> plots.Variant:
        parity = self.artifact.get("parity") or {}
        passed = parity.get("passed") if "skipped" not in parity else None
        return plots.Variant(f"{self.artifact['target']} {self.artifact['variant']}", self.artifact["target"],
                             int(self.artifact["size_bytes"]), passed)


def render_report(record: dict, *, inspection: dict | None = None, measurements: dict | None = None) -> str:
    """The page of one ``deploykit-report.json`` record. ``inspection``: ``Inspection.to_json()`` of the source,
    or ``{"unavailable": why}``; ``measurements``: artifact path -> ``{"latency", "accuracy"}`` measured
    after the conversion (``deploykit build``), which take precedence over the record's own latency."""
    name = record.get("source", {}).get("name") or "model"
    body = [_header(f"deploykit report: {name}", _summary_line(record)), _model(record, inspection, measurements, "")]
    body.append(_footer(record))
    return _document(f"deploykit report: {name}", body)


def render_build_report(build: dict, models: list[tuple[dict, dict | None, dict | None]]) -> str:
    """The page of a ``deploykit-build.json``: the build's jobs and gates, then one part per model, each from the
    combined record of its jobs (``(record, inspection, measurements)`` as for ``render_report``)."""
    jobs = build.get("jobs", [])
    ok = sum(1 for j in jobs if j.get("status") == "ok")
    reused = sum(1 for j in jobs if j.get("reused"))
    gates = build.get("gates", [])
    failed_gates = [g for g in gates if g.get("status") == "failed"]
    line = (f"{len(jobs)} jobs ({ok} ok" + (f", {reused} reused from an earlier build" if reused else "") + "), "
            f"{build.get('workers', 1)} worker(s), {build.get('seconds', 0)} s; "
            f"{len(build.get('bundles', []))} bundles; gates: "
            + (f"{len(gates) - len(failed_gates)} of {len(gates)} passed" if gates else "none (no baseline)"))
    body = [_header("deploykit build report", line)]
    if failed_gates:
        body.append(_gates(failed_gates))
    several = len(models) > 1
    for record, inspection, measurements in models:
        name = record.get("source", {}).get("name") or "model"
        suffix = f"-{cells.slug(name)}" if several else ""
        part = _model(record, inspection, measurements, suffix)
        body.append(f'<section class="model" id="model-{cells.slug(name)}"><h2 class="model-name">{cells.e(name)}</h2>{part}</section>'
                    if several else part)
    if models:
        body.append(_footer(models[0][0]))
    return _document("deploykit build report", body)


# -- one model ------------------------------------------------------------------------------------------

def _model(record: dict, inspection: dict | None, measurements: dict | None, suffix: str) -> str:
    measurements = measurements or {}
    rows = []
    for artifact in record.get("artifacts", []):
        measured = measurements.get(artifact["path"], {})
        rows.append(Row(artifact, measured.get("latency") or artifact.get("latency"), measured.get("accuracy")))
    parts = [_source(record.get("source", {}), inspection, suffix), _variants(rows, record, suffix),
             compatibility.section(record.get("artifacts", []), suffix), _plots(rows, suffix)]
    return "\n".join(part for part in parts if part)


def _source(source: dict, inspection: dict | None, suffix: str) -> str:
    facts = [("model", source.get("name")), ("file", source.get("path")),
             ("format", f"{source.get('framework', '?')} ({source.get('format', '?')})"),
             ("sha256", source.get("sha256")),
             ("inputs", "; ".join(cells.tensor(t) for t in source.get("inputs", []))),
             ("outputs", "; ".join(cells.tensor(t) for t in source.get("outputs", [])))]
    parts = [f'<section id="source{suffix}" class="source"><h2>Source</h2>']
    if not inspection or "unavailable" in inspection:
        why = (inspection or {}).get("unavailable", "not run")
        parts.append(cells.dl(facts))
        parts.append(f'<p class="unavailable">source inspection unavailable: {cells.e(why)}</p>')
    else:
        weights = ", ".join(f"{cells.size(b)} {cells.e(d)}" for d, b in sorted(inspection.get("weight_bytes", {}).items()))
        facts += [("parameters", cells.count(inspection.get("params"))), ("mult-adds (MACs)", cells.count(inspection.get("macs"))),
                  ("peak activation memory", cells.size(inspection.get("peak_activation_bytes"))),
                  ("weights as stored", weights or "-"),
                  ("ops", ", ".join(f"{cells.e(op)} × {n}" for op, n in list(inspection.get("ops", {}).items())[:12])
                   + (" …" if len(inspection.get("ops", {})) > 12 else ""))]
        parts.append(cells.dl(facts, raw={"ops", "weights as stored"}))
        parts.append('<div class="side-by-side"><div>')
        parts.append(_layer_type_table(inspection.get("by_layer_type", {})))
        rows = [(title, float(inspection.get("by_layer_type", {}).get(key, {}).get("macs_percent", 0.0)),
                 float(inspection.get("by_layer_type", {}).get(key, {}).get("params_percent", 0.0)))
                for key, title in LAYER_TYPES]
        figure = _figure("layer-types", suffix, "Per layer type: share of mult-adds and of parameters",
                         lambda: plots.layer_types(rows))
        notes = inspection.get("notes") or []
        if notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{cells.e(n)}</li>" for n in notes) + "</ul>")
        parts.append(f"</div>{figure}</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _layer_type_table(by_type: dict) -> str:
    lines = ['<table class="layer-types"><thead><tr><th>layer type</th><th>MACs</th><th>share of MACs</th>'
             "<th>parameters</th><th>share of parameters</th></tr></thead><tbody>"]
    for key, title in LAYER_TYPES:
        row = by_type.get(key, {})
        lines.append(f'<tr data-layer-type="{key}"><td>{title}</td><td class="num">{cells.count(row.get("macs"))}</td>'
                     f'<td class="num">{cells.percent(row.get("macs_percent"))}</td><td class="num">{cells.count(row.get("params"))}</td>'
                     f'<td class="num">{cells.percent(row.get("params_percent"))}</td></tr>')
    lines.append("</tbody></table>")
    return "".join(lines)


def _variants(rows: list[Row], record: dict, suffix: str) -> str:
    head = ["target", "variant", "artifact", "size", "size vs limit", "output", *(t for _, t, _ in METRICS), "parity",
            "host latency", "accuracy"]
    lines = [f'<section id="variants{suffix}" class="variants"><h2>Variants</h2>',
             '<table class="variants"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        lines.append(_variant_row(row))
    lines.append("</tbody></table>")
    failures = record.get("failures") or []
    if failures:
        lines.append('<h3>Not converted</h3><table class="failures"><thead><tr><th>target</th><th>variant</th>'
                     "<th>error</th><th>message</th></tr></thead><tbody>")
        for f in failures:
            lines.append(f'<tr class="failure"><td>{cells.e(f.get("target"))}</td><td>{cells.e(f.get("variant"))}</td>'
                         f'<td>{cells.e(f.get("error"))}</td><td>{cells.e(f.get("message"))}</td></tr>')
        lines.append("</tbody></table>")
    lines.append(f'<p class="note">{cells.e(LATENCY_NOTE)}</p></section>')
    return "\n".join(lines)


def _variant_row(row: Row) -> str:
    a = row.artifact
    parity = a.get("parity") or {}
    outputs = parity.get("outputs") or {}
    limit = a.get("size_limit") or {}
    attrs = {"target": a["target"], "variant": a["variant"], "path": a["path"], "size-bytes": a["size_bytes"],
             "passed": cells.json_bool(parity.get("passed")) if parity and "skipped" not in parity else "unchecked"}
    tds = [cells.e(a["target"]), cells.e(a["variant"]), f'<span class="path" title="{cells.e(a["path"])}">{cells.e(posixpath.basename(a["path"]))}</span>',
             f'<span data-bytes="{int(a["size_bytes"])}">{cells.size(a["size_bytes"])}</span>']
    if limit.get("limit_bytes"):
        why = (f'limit: {limit.get("parameters", 0):,} parameters x {limit.get("bits_per_weight")} bits / 8; the ratio '
               "shows the overhead of scales, look-up tables, graph structure and names")
        tds.append(f'<span title="{cells.e(why)}" data-limit-bytes="{int(limit["limit_bytes"])}">{cells.size(a["size_bytes"])} of '
                     f'{cells.size(limit["limit_bytes"])} ({cells.number(limit.get("ratio"), "{:.2f}")}×)</span>')
    else:
        tds.append("-")
    names = list(outputs)
    tds.append("".join(f"<div>{cells.e(n)}</div>" for n in names) or "-")
    for key, _, fmt in METRICS:
        tds.append("".join(_metric(n, outputs[n].get(key), fmt) for n in names) or "-")
    tds.append(_parity(parity))
    tds.append(_latency(row.latency) + _slower(row.latency))
    tds.append(_accuracy(row.accuracy))
    classes = ["variant"] + (["failed"] if parity.get("passed") is False else [])
    data = " ".join(f'data-{k}="{cells.e(v)}"' for k, v in attrs.items())
    keys = ["target", "variant", "artifact", "size", "size-limit", "outputs", *(k.replace("_", "-") for k, _, _ in METRICS),
            "parity", "latency", "accuracy"]
    return (f'<tr class="{" ".join(classes)}" {data}>'
            + "".join(f'<td class="{k}">{c}</td>' for k, c in zip(keys, tds)) + "</tr>")


def _metric(output: str, value, fmt: str) -> str:
    number = cells.as_float(value)
    if number is None:
        return f'<div data-output="{cells.e(output)}">-</div>'
    return f'<div data-output="{cells.e(output)}" data-value="{number!r}">{cells.number(number, fmt)}</div>'


def _parity(parity: dict) -> str:
    if not parity:
        return '<span class="unchecked">not checked</span>'
    if "skipped" in parity:
        return f'<span class="unchecked" title="{cells.e(parity["skipped"])}">not checked (Select-TF ops)</span>'
    verdict = '<span class="pass">pass</span>' if parity.get("passed") else '<span class="fail">FAIL</span>'
    text = f"{verdict} {cells.e(parity.get('profile'))}"
    sizes = parity.get("sizes")
    if sizes:
        text += f" at {sum(bool(s.get('passed')) for s in sizes)}/{len(sizes)} sizes"
    if parity.get("samples"):
        text += f'<div class="small">{int(parity["samples"])} samples ({cells.e(parity.get("inputs") or "inputs")}), ' \
                f'{cells.e(parity.get("artifact_runner") or "")}</div>'
    if parity.get("diverges_at"):
        text += f'<div class="small">diverges at {cells.e(parity["diverges_at"])}</div>'
    if parity.get("problem"):
        text += f'<div class="small">{cells.e(parity["problem"])}</div>'
    return text


def _latency(latency: dict | None) -> str:
    if not latency:
        return '<span class="unchecked">not measured</span>'
    if latency.get("median_ms") is None:
        return f'<span class="unchecked">unavailable: {cells.e(latency.get("unavailable", "not measured"))}</span>'
    ms = float(latency["median_ms"])
    if latency.get("source") == "estimate":
        return (f'<span class="latency-value estimate" data-ms="{ms!r}" data-source="estimate">≈ {cells.ms(ms)}</span>'
                f'<div class="small estimate-label">{cells.e(latency.get("label") or "estimate")}</div>')
    runs = latency.get("runs")
    how = {"litert": "LiteRT", "executorch": "ExecuTorch runtime"}.get(latency.get("source"),
                                                                      str(latency.get("source") or "measured")) \
        + (f", median of {runs} runs" if runs else "")
    return (f'<span class="latency-value measured" data-ms="{ms!r}" data-source="{cells.e(latency.get("source", "litert"))}">'
            f'{cells.ms(ms)}</span><div class="small">{cells.e(how)}</div>')


def _slower(latency: dict | None) -> str:
    """The trade-off note of a variant slower than its target's fp32 artifact (pipeline.latency_notes)."""
    note = (latency or {}).get("slower_than_fp32")
    if not note:
        return ""
    return (f'<div class="small slower-note" data-ratio="{float(note["ratio"])!r}" data-fp32-ms="{float(note["fp32_ms"])!r}">'
            f'{float(note["ratio"]):.2f}× slower than fp32 ({cells.ms(float(note["fp32_ms"]))}): {cells.e(note.get("why"))}</div>')


def _accuracy(accuracy: dict | None) -> str:
    if not accuracy:
        return '<span class="unchecked" title="no validation data given">-</span>'
    return (f'<span data-top1="{float(accuracy["top1"])!r}">{float(accuracy["top1"]):.1f} % top-1</span>'
            f'<div class="small">{int(accuracy.get("correct", 0))} of {int(accuracy.get("samples", 0))}</div>')


# -- plots ----------------------------------------------------------------------------------------------

def _plots(rows: list[Row], suffix: str) -> str:
    parts = [f'<section id="plots{suffix}" class="plots"><h2>Plots</h2>']
    checked = [r for r in rows if _errors(r)]
    if checked:
        points = [(r.variant, max(e for e in _errors(r).values() if e is not None)) for r in checked]
        parts.append(_figure("size-error", suffix, "Size against error: every variant's artifact size and its worst max "
                             "relative error over all outputs (lower left is better; a red edge fails parity)",
                             lambda: plots.size_vs_error(points)))
        outputs = list(dict.fromkeys(n for r in checked for n in _errors(r)))
        series = [(r.variant, [_errors(r).get(n) for n in outputs]) for r in checked]
        parts.append(_figure("output-error", suffix, "Error per output: max relative error of each output, one bar per "
                             "variant (Core ML hatched)", lambda: plots.error_per_output(outputs, series)))
    else:
        parts.append('<p class="note">No parity figures: the artifacts were not compared with the source '
                     "(--no-verify), so there is no error to plot.</p>")
    timed = [(r.variant, float(r.latency["median_ms"]), r.latency.get("source") == "estimate")
             for r in rows if r.latency and r.latency.get("median_ms") is not None]
    if timed:
        parts.append(_figure("latency", suffix, "Host latency per variant: TFLite measured with LiteRT; Core ML is an "
                             "estimate (op-count cost model, no Core ML runtime on this machine), drawn hatched",
                             lambda: plots.latency(timed)))
    for number, row in enumerate(rows):
        auto = row.artifact.get("quantization") or {}
        if auto.get("candidates"):
            budget = auto.get("budget") or {}
            limit = budget.get("max_accuracy_drop") if budget.get("max_accuracy_drop") is not None else budget.get("max_error")
            parts.append(_figure(f"pareto-{number}", suffix, f"{row.variant.label}: size against {auto.get('measure')} for every "
                                 "per-layer assignment --quantize auto evaluated (squares: one scheme everywhere; dots: "
                                 "the search's path; star: the artifact made; red edge: over the budget)",
                                 lambda a=auto, lab=row.variant.label, lim=limit: plots.pareto(lab, a.get("measure", ""),
                                                                                              float(lim), a["candidates"])))
        if auto.get("localized"):
            parts.append(_figure(f"contributions-{number}", suffix, f"{row.variant.label}: where the compression error comes from "
                                 "(--localize): each layer compressed alone, ranked, and its output against the "
                                 "reference's at the same point",
                                 lambda a=auto, lab=row.variant.label: plots.contributions(lab, a["localized"]["layers"])))
    lines = [line for line in (_divergence(r) for r in rows) if line]
    if lines:
        parts.append(_figure("divergence", suffix, "Per-layer divergence (--localize): max relative error of each "
                             "source layer's output against the artifact's closest tensor, in execution order (layers the "
                             "artifact fuses away are left out); the red cross marks the first layer where the error "
                             "starts and never recovers",
                             lambda: plots.divergence(lines)))
    parts.append("</section>")
    return "\n".join(parts)


def _errors(row: Row) -> dict[str, float | None]:
    """Each output's max relative error, None where there is none to draw (not computed, or infinite: the
    table shows ∞, a log axis cannot)."""
    outputs = (row.artifact.get("parity") or {}).get("outputs") or {}
    errors = {name: cells.finite(o.get("max_rel_error")) for name, o in outputs.items()}
    return errors if any(e is not None for e in errors.values()) else {}


def _divergence(row: Row) -> dict | None:
    loc = (row.artifact.get("parity") or {}).get("localization") or {}
    # A fused tensor's error is against whatever artifact tensor came closest: no divergence, so not drawn.
    layers = [(int(layer["index"]), str(layer["source"]), cells.finite(layer.get("max_rel_error")))
              for layer in loc.get("layers") or [] if not layer.get("fused")]
    layers = [(i, n, e) for i, n, e in layers if e is not None]
    if not layers:
        return None
    culprit = loc.get("culprit_index")
    return {"label": row.variant.label, "target": row.artifact["target"], "layers": layers,
            "tolerance": cells.as_float(loc.get("tolerance")), "culprit": culprit}


def _figure(name: str, suffix: str, caption: str, draw) -> str:
    svg = draw()
    return (f'<figure class="plot" id="plot-{name}{suffix}" data-plot="{name}">{svg}'
            f"<figcaption>{cells.e(caption)}</figcaption></figure>")


# -- page -----------------------------------------------------------------------------------------------

def _header(title: str, line: str) -> str:
    return f'<header><h1>{cells.e(title)}</h1><p class="summary">{cells.e(line)}</p></header>'


def _summary_line(record: dict) -> str:
    artifacts = record.get("artifacts", [])
    checked = [a for a in artifacts if a.get("parity") and "skipped" not in a["parity"]]
    passed = sum(1 for a in checked if a["parity"].get("passed"))
    text = f"{len(artifacts)} artifacts"
    if checked:
        text += f", {passed} of {len(checked)} pass parity"
    if record.get("failures"):
        text += f", {len(record['failures'])} could not be converted"
    return text + f"; converted in {record.get('total_seconds', 0)} s by deploykit {record.get('deploykit_version', '?')}"


def _gates(failed: list[dict]) -> str:
    lines = ['<section id="gates" class="gates"><h2>Failed gates</h2><table class="gates"><thead><tr><th>job</th>'
             "<th>gate</th><th>baseline</th><th>now</th><th>limit</th><th>result</th></tr></thead><tbody>"]
    for g in failed:
        lines.append(f'<tr><td>{cells.e(g.get("job"))}</td><td>{cells.e(g.get("gate"))}</td><td>{cells.e(g.get("baseline"))}</td>'
                     f'<td>{cells.e(g.get("current"))}</td><td>{cells.e(g.get("limit"))}</td>'
                     f'<td class="fail">{cells.e(g.get("message") or g.get("status"))}</td></tr>')
    lines.append("</tbody></table></section>")
    return "".join(lines)


def _footer(record: dict) -> str:
    versions = ", ".join(f"{cells.e(k)} {cells.e(v)}" for k, v in sorted((record.get("tool_versions") or {}).items()))
    return f'<footer><p>Tools: {versions}</p><p>Written by deploykit from deploykit-report.json.</p></footer>'


def _document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{cells.e(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
