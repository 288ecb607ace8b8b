"""``report.html``: one self-contained page per conversion (or build) from its record.

Everything is inline: the stylesheet in ``<style>``, each plot as an ``<svg>`` element (``plots``); the
page has no script and names no external URL, so it opens the same from a CI artifact, an e-mail or a
machine without network. Every string from the record is escaped: model, layer and output names come
from untrusted files.

Stable hooks for tests and tools: ``section#source``, ``section#variants`` with one ``tr.variant`` per
artifact (``data-*`` attributes hold the record's numbers), and ``figure.plot#plot-...`` per plot. A build
page with several models suffixes the ids with ``-MODEL``.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from html import escape

from deploykit.inspection.model import LAYER_TYPE_TITLES
from deploykit.inspection.model import LAYER_TYPES as INSPECTED_TYPES
from deploykit.report import plots

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
        suffix = f"-{_slug(name)}" if several else ""
        part = _model(record, inspection, measurements, suffix)
        body.append(f'<section class="model" id="model-{_slug(name)}"><h2 class="model-name">{_e(name)}</h2>{part}</section>'
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
    return "\n".join([_source(record.get("source", {}), inspection, suffix), _variants(rows, record, suffix),
                      _plots(rows, suffix)])


def _source(source: dict, inspection: dict | None, suffix: str) -> str:
    facts = [("model", source.get("name")), ("file", source.get("path")),
             ("format", f"{source.get('framework', '?')} ({source.get('format', '?')})"),
             ("sha256", source.get("sha256")),
             ("inputs", "; ".join(_tensor(t) for t in source.get("inputs", []))),
             ("outputs", "; ".join(_tensor(t) for t in source.get("outputs", [])))]
    parts = [f'<section id="source{suffix}" class="source"><h2>Source</h2>']
    if not inspection or "unavailable" in inspection:
        why = (inspection or {}).get("unavailable", "not run")
        parts.append(_dl(facts))
        parts.append(f'<p class="unavailable">source inspection unavailable: {_e(why)}</p>')
    else:
        weights = ", ".join(f"{_size(b)} {_e(d)}" for d, b in sorted(inspection.get("weight_bytes", {}).items()))
        facts += [("parameters", _count(inspection.get("params"))), ("mult-adds (MACs)", _count(inspection.get("macs"))),
                  ("peak activation memory", _size(inspection.get("peak_activation_bytes"))),
                  ("weights as stored", weights or "-"),
                  ("ops", ", ".join(f"{_e(op)} × {n}" for op, n in list(inspection.get("ops", {}).items())[:12])
                   + (" …" if len(inspection.get("ops", {})) > 12 else ""))]
        parts.append(_dl(facts, raw={"ops", "weights as stored"}))
        parts.append('<div class="side-by-side"><div>')
        parts.append(_layer_type_table(inspection.get("by_layer_type", {})))
        rows = [(title, float(inspection.get("by_layer_type", {}).get(key, {}).get("macs_percent", 0.0)),
                 float(inspection.get("by_layer_type", {}).get(key, {}).get("params_percent", 0.0)))
                for key, title in LAYER_TYPES]
        figure = _figure("layer-types", suffix, "Per layer type: share of mult-adds and of parameters",
                         lambda: plots.layer_types(rows))
        notes = inspection.get("notes") or []
        if notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
        parts.append(f"</div>{figure}</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _layer_type_table(by_type: dict) -> str:
    lines = ['<table class="layer-types"><thead><tr><th>layer type</th><th>MACs</th><th>share of MACs</th>'
             "<th>parameters</th><th>share of parameters</th></tr></thead><tbody>"]
    for key, title in LAYER_TYPES:
        row = by_type.get(key, {})
        lines.append(f'<tr data-layer-type="{key}"><td>{title}</td><td class="num">{_count(row.get("macs"))}</td>'
                     f'<td class="num">{_percent(row.get("macs_percent"))}</td><td class="num">{_count(row.get("params"))}</td>'
                     f'<td class="num">{_percent(row.get("params_percent"))}</td></tr>')
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
            lines.append(f'<tr class="failure"><td>{_e(f.get("target"))}</td><td>{_e(f.get("variant"))}</td>'
                         f'<td>{_e(f.get("error"))}</td><td>{_e(f.get("message"))}</td></tr>')
        lines.append("</tbody></table>")
    lines.append(f'<p class="note">{_e(LATENCY_NOTE)}</p></section>')
    return "\n".join(lines)


def _variant_row(row: Row) -> str:
    a = row.artifact
    parity = a.get("parity") or {}
    outputs = parity.get("outputs") or {}
    limit = a.get("size_limit") or {}
    attrs = {"target": a["target"], "variant": a["variant"], "path": a["path"], "size-bytes": a["size_bytes"],
             "passed": _json_bool(parity.get("passed")) if parity and "skipped" not in parity else "unchecked"}
    cells = [_e(a["target"]), _e(a["variant"]), f'<span class="path" title="{_e(a["path"])}">{_e(posixpath.basename(a["path"]))}</span>',
             f'<span data-bytes="{int(a["size_bytes"])}">{_size(a["size_bytes"])}</span>']
    if limit.get("limit_bytes"):
        why = (f'limit: {limit.get("parameters", 0):,} parameters x {limit.get("bits_per_weight")} bits / 8; the ratio '
               "shows the overhead of scales, look-up tables, graph structure and names")
        cells.append(f'<span title="{_e(why)}" data-limit-bytes="{int(limit["limit_bytes"])}">{_size(a["size_bytes"])} of '
                     f'{_size(limit["limit_bytes"])} ({_number(limit.get("ratio"), "{:.2f}")}×)</span>')
    else:
        cells.append("-")
    names = list(outputs)
    cells.append("".join(f"<div>{_e(n)}</div>" for n in names) or "-")
    for key, _, fmt in METRICS:
        cells.append("".join(_metric(n, outputs[n].get(key), fmt) for n in names) or "-")
    cells.append(_parity(parity))
    cells.append(_latency(row.latency))
    cells.append(_accuracy(row.accuracy))
    classes = ["variant"] + (["failed"] if parity.get("passed") is False else [])
    data = " ".join(f'data-{k}="{_e(v)}"' for k, v in attrs.items())
    keys = ["target", "variant", "artifact", "size", "size-limit", "outputs", *(k.replace("_", "-") for k, _, _ in METRICS),
            "parity", "latency", "accuracy"]
    return (f'<tr class="{" ".join(classes)}" {data}>'
            + "".join(f'<td class="{k}">{c}</td>' for k, c in zip(keys, cells)) + "</tr>")


def _metric(output: str, value, fmt: str) -> str:
    number = _float(value)
    if number is None:
        return f'<div data-output="{_e(output)}">-</div>'
    return f'<div data-output="{_e(output)}" data-value="{number!r}">{_number(number, fmt)}</div>'


def _parity(parity: dict) -> str:
    if not parity:
        return '<span class="unchecked">not checked</span>'
    if "skipped" in parity:
        return f'<span class="unchecked" title="{_e(parity["skipped"])}">not checked (Select-TF ops)</span>'
    verdict = '<span class="pass">pass</span>' if parity.get("passed") else '<span class="fail">FAIL</span>'
    text = f"{verdict} {_e(parity.get('profile'))}"
    sizes = parity.get("sizes")
    if sizes:
        text += f" at {sum(bool(s.get('passed')) for s in sizes)}/{len(sizes)} sizes"
    if parity.get("samples"):
        text += f'<div class="small">{int(parity["samples"])} samples ({_e(parity.get("inputs") or "inputs")}), ' \
                f'{_e(parity.get("artifact_runner") or "")}</div>'
    if parity.get("diverges_at"):
        text += f'<div class="small">diverges at {_e(parity["diverges_at"])}</div>'
    if parity.get("problem"):
        text += f'<div class="small">{_e(parity["problem"])}</div>'
    return text


def _latency(latency: dict | None) -> str:
    if not latency:
        return '<span class="unchecked">not measured</span>'
    if latency.get("median_ms") is None:
        return f'<span class="unchecked">unavailable: {_e(latency.get("unavailable", "not measured"))}</span>'
    ms = float(latency["median_ms"])
    if latency.get("source") == "estimate":
        return (f'<span class="latency-value estimate" data-ms="{ms!r}" data-source="estimate">≈ {_ms(ms)}</span>'
                f'<div class="small estimate-label">{_e(latency.get("label") or "estimate")}</div>')
    runs = latency.get("runs")
    how = {"litert": "LiteRT", "executorch": "ExecuTorch runtime"}.get(latency.get("source"),
                                                                      str(latency.get("source") or "measured")) \
        + (f", median of {runs} runs" if runs else "")
    return (f'<span class="latency-value measured" data-ms="{ms!r}" data-source="{_e(latency.get("source", "litert"))}">'
            f'{_ms(ms)}</span><div class="small">{_e(how)}</div>')


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
    errors = {name: _finite(o.get("max_rel_error")) for name, o in outputs.items()}
    return errors if any(e is not None for e in errors.values()) else {}


def _divergence(row: Row) -> dict | None:
    loc = (row.artifact.get("parity") or {}).get("localization") or {}
    # A fused tensor's error is against whatever artifact tensor came closest: no divergence, so not drawn.
    layers = [(int(layer["index"]), str(layer["source"]), _finite(layer.get("max_rel_error")))
              for layer in loc.get("layers") or [] if not layer.get("fused")]
    layers = [(i, n, e) for i, n, e in layers if e is not None]
    if not layers:
        return None
    culprit = loc.get("culprit_index")
    return {"label": row.variant.label, "target": row.artifact["target"], "layers": layers,
            "tolerance": _float(loc.get("tolerance")), "culprit": culprit}


def _figure(name: str, suffix: str, caption: str, draw) -> str:
    svg = draw()
    return (f'<figure class="plot" id="plot-{name}{suffix}" data-plot="{name}">{svg}'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


# -- page -----------------------------------------------------------------------------------------------

def _header(title: str, line: str) -> str:
    return f'<header><h1>{_e(title)}</h1><p class="summary">{_e(line)}</p></header>'


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
        lines.append(f'<tr><td>{_e(g.get("job"))}</td><td>{_e(g.get("gate"))}</td><td>{_e(g.get("baseline"))}</td>'
                     f'<td>{_e(g.get("current"))}</td><td>{_e(g.get("limit"))}</td>'
                     f'<td class="fail">{_e(g.get("message") or g.get("status"))}</td></tr>')
    lines.append("</tbody></table></section>")
    return "".join(lines)


def _footer(record: dict) -> str:
    versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted((record.get("tool_versions") or {}).items()))
    return f'<footer><p>Tools: {versions}</p><p>Written by deploykit from deploykit-report.json.</p></footer>'


def _document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1a202c;background:#f7fafc;
margin:0 auto;padding:24px 32px;max-width:1240px;font-size:14px;line-height:1.45}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 8px}
header .summary{color:#4a5568;margin:0}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:4px 18px 14px;margin:18px 0}
section.model{background:transparent;border:none;padding:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:8px 0}
dt{color:#4a5568}dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #e2e8f0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7;font-weight:600}
td.num,table.variants td.max-rel-error,table.variants td.cosine-similarity,table.variants td.snr-db,
table.variants td.top1-agreement{font-variant-numeric:tabular-nums}
table.variants{width:100%}
table.variants .path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;overflow-wrap:anywhere}
tr.failed{background:#fff5f5}
.pass{color:#276749;font-weight:600}.fail{color:#c53030;font-weight:600}
.unchecked{color:#718096}.unavailable{color:#975a16;background:#fffaf0;padding:6px 10px;border-radius:4px}
.small{font-size:11.5px;color:#4a5568}
.estimate{font-style:italic}.estimate-label{color:#975a16}
.note{color:#4a5568;font-size:12.5px}
ul.notes{color:#4a5568;font-size:12px;padding-left:18px}
.side-by-side{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:0 20px;align-items:start}
section.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:0 16px;align-items:start}
section.plots>h2,section.plots>p{grid-column:1/-1}
figure.plot{margin:14px 0;padding:10px;background:#fff;border:1px solid #e2e8f0;border-radius:6px;max-width:780px}
figure.plot svg{display:block;width:100%;height:auto}
figcaption{font-size:12.5px;color:#4a5568;margin-top:6px}
footer{color:#718096;font-size:12px;margin-top:24px}
"""


# -- formatting -----------------------------------------------------------------------------------------

def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _dl(facts, raw=frozenset()) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v if k in raw else _e(v if v not in (None, '') else '-')}</dd>"
                            for k, v in facts) + "</dl>"


def _tensor(spec: dict) -> str:
    shape = "x".join("?" if d is None else str(d) for d in spec.get("shape") or [])
    return f"{spec.get('name')} {shape} {spec.get('dtype', '')}".strip() + (f" {spec['layout']}" if spec.get("layout") else "")


def _float(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(value)
        if value is None:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _finite(value) -> float | None:
    number = _float(value)
    return number if number is not None and math.isfinite(number) else None


def _number(value, fmt: str) -> str:
    number = _float(value)
    if number is None:
        return "-"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    return fmt.format(number)


def _size(size) -> str:
    from deploykit.report.units import human_size  # the terminal's units, so the page and the tables agree

    return "-" if size is None else human_size(float(size))


def _count(value) -> str:
    if value is None:
        return "-"
    value = int(value)
    for limit, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f} {unit} ({value:,})"
    return f"{value:,}"


def _percent(value) -> str:
    number = _float(value)
    return "-" if number is None else f"{number:.1f} %"


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"


def _json_bool(value) -> str:
    return {True: "true", False: "false"}.get(value, "unchecked")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "model"
