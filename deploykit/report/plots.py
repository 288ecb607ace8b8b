"""The report's plots: matplotlib figures rendered to SVG text for inlining in report.html.

Each function takes plain data (``html`` extracts it from the record) and returns one ``<svg>`` element.
Figures are made with ``matplotlib.figure.Figure`` directly, not pyplot: no global figure registry and no
GUI backend, so a caller's own matplotlib state is left alone. Text is drawn as paths (no font needed
where the file is opened) and the output is deterministic: ids are salted per plot, the date is left out.
"""

from __future__ import annotations

import functools
import io
import math
import re
from dataclasses import dataclass

MEASURED_COLOUR = "#2b6cb0"  # the latency legend: a bar measured on this machine
ESTIMATE_COLOUR = "#c05621"  # and one the op-count cost model estimated
UNKNOWN_COLOUR = "#555555"  # a target this deploykit does not know (an old record's)
ERROR_FLOOR = 1e-9  # an exact match (error 0) is drawn here: a log axis has no 0
FAIL_COLOUR = "#c53030"


@dataclass(frozen=True)
class Variant:
    """One artifact as the plots see it."""

    label: str  # "tflite fp16"
    target: str
    size_bytes: int
    passed: bool | None  # parity verdict; None when not checked


def _plot(name: str):
    """Run a plot function under the report's style (rcParams are read as artists are made and saved)."""

    def wrap(fn):
        @functools.wraps(fn)
        def styled(*args, **kwargs):
            with _style(name):
                return fn(*args, **kwargs)

        return styled

    return wrap


@_plot("size-error")
def size_vs_error(points: list[tuple[Variant, float]]) -> str:
    """Artifact size against its worst max relative error over all outputs, one labelled marker per variant."""
    fig, ax = _figure(height=3.8)
    unit, divisor = ("MB", 1 << 20) if max((v.size_bytes for v, _ in points), default=0) > 2 << 20 else ("KB", 1 << 10)
    for i, (variant, error) in enumerate(points):
        x, y = variant.size_bytes / divisor, max(error, ERROR_FLOOR)
        ax.scatter([x], [y], s=46, marker=_target_style(variant.target, "plot_marker", "o"), zorder=3,
                   color=_target_style(variant.target, "plot_colour", UNKNOWN_COLOUR),
                   edgecolors=FAIL_COLOUR if variant.passed is False else "white", linewidths=1.6)
        ax.annotate(variant.label + (" (fails parity)" if variant.passed is False else ""), (x, y),
                    xytext=(7, 6 if i % 2 == 0 else -12), textcoords="offset points", fontsize=8, color="#1a202c")
    _log_y(ax)
    ax.set_xlim(0, max((v.size_bytes / divisor for v, _ in points), default=1) * 1.3)
    errors = [max(e, ERROR_FLOOR) for _, e in points]
    if errors:
        ax.set_ylim(min(errors) / 8, max(errors) * 8)
    ax.set_xlabel(f"artifact size ({unit})")
    ax.set_ylabel("worst max relative error\nover all outputs (log scale)")
    _target_legend(ax, {v.target for v, _ in points})
    return _svg(fig, "Artifact size against worst max relative error, one marker per variant")


@_plot("output-error")
def error_per_output(outputs: list[str], series: list[tuple[Variant, list[float | None]]]) -> str:
    """Max relative error of every output, one bar per variant in each output's group."""
    fig, ax = _figure(height=3.6)
    width = 0.8 / max(1, len(series))
    palette = _palette(len(series))
    values = []
    for k, (variant, errors) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(outputs))]
        ys = [max(e, ERROR_FLOOR) if e is not None else math.nan for e in errors]
        values += [y for y in ys if not math.isnan(y)]
        ax.bar(xs, ys, width * 0.92, color=palette[k], label=variant.label,
               hatch=_target_style(variant.target, "hatch", None), edgecolor="white", linewidth=0.4)
    _log_y(ax)
    ax.set_xticks(range(len(outputs)), [_short(o, 24) for o in outputs])
    ax.set_xlim(-0.6, len(outputs) - 0.4)
    ax.set_ylabel("max relative error (log scale)")
    if values:
        ax.set_ylim(min(values) / 4, max(values) * 4)
    ax.legend(fontsize=7.5, ncols=min(4, len(series)), loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    return _svg(fig, "Max relative error per output, one bar per variant")


@_plot("latency")
def latency(bars: list[tuple[Variant, float, bool]]) -> str:
    """Host latency per variant: LiteRT measured (solid), Core ML estimated by the cost model (hatched)."""
    fig, ax = _figure(height=0.5 + 0.34 * max(3, len(bars)))
    ys = list(range(len(bars)))[::-1]
    for y, (variant, ms, estimated) in zip(ys, bars):
        colour = _target_style(variant.target, "plot_colour", UNKNOWN_COLOUR)
        ax.barh(y, ms, 0.62, color="white" if estimated else colour, edgecolor=colour, hatch="///" if estimated else None,
                linewidth=1.2)
        ax.annotate(f"{_ms(ms)}" + (" estimate" if estimated else ""), (ms, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8, color="#1a202c")
    ax.set_yticks(ys, [v.label for v, _, _ in bars])
    ax.set_xlabel("host latency per inference (ms)")
    ax.set_xlim(0, max((ms for _, ms, _ in bars), default=1) * 1.35)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=MEASURED_COLOUR, label="measured on this machine (1 thread)"),
               Patch(facecolor="white", edgecolor=ESTIMATE_COLOUR, hatch="///",
                     label="estimate (op-count cost model, no Core ML runtime)")]
    estimated = {e for _, _, e in bars}
    ax.legend(handles=[h for h, e in zip(handles, (False, True)) if e in estimated], fontsize=7.5, loc="lower left",
              bbox_to_anchor=(0, 1.0), ncols=2, frameon=False)
    return _svg(fig, "Host latency per variant; Core ML figures are estimates")


@_plot("layer-types")
def layer_types(rows: list[tuple[str, float, float]]) -> str:
    """Share of mult-adds and of parameters per layer type (title, MACs percent, parameters percent)."""
    fig, ax = _figure(height=0.6 + 0.42 * len(rows))
    ys = list(range(len(rows)))[::-1]
    for y, (_, macs, params) in zip(ys, rows):
        ax.barh(y + 0.18, macs, 0.34, color="#2f855a")
        ax.barh(y - 0.18, params, 0.34, color="#805ad5")
        for offset, value in ((0.18, macs), (-0.18, params)):
            ax.annotate(f"{value:.1f} %", (value, y + offset), xytext=(3, 0), textcoords="offset points", va="center",
                        fontsize=7.5, color="#1a202c")
    ax.set_yticks(ys, [title for title, _, _ in rows])
    ax.set_xlim(0, 112)
    ax.set_xlabel("share of the model's total (%)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#2f855a", label="mult-adds (MACs)"), Patch(color="#805ad5", label="parameters")],
              fontsize=7.5, loc="lower right", frameon=False)
    return _svg(fig, "Share of mult-adds and parameters per layer type")


@_plot("divergence")
def divergence(lines: list[dict]) -> str:
    """Per-layer max relative error of the source's intermediate tensors against the artifact's, in the
    source's execution order, one line per localized artifact: ``{"label", "target", "layers": [(index,
    name, error)], "tolerance", "culprit": index or None}``."""
    fig, ax = _figure(height=3.8)
    palette = _palette(len(lines))
    names: dict[int, str] = {}
    values = []
    for k, line in enumerate(lines):
        xs = [i for i, _, _ in line["layers"]]
        ys = [max(e, ERROR_FLOOR) for _, _, e in line["layers"]]
        values += ys
        names.update((i, n) for i, n, _ in line["layers"])
        ax.plot(xs, ys, marker=".", markersize=4, linewidth=1.2, color=palette[k], label=line["label"])
        if line.get("tolerance"):
            ax.axhline(line["tolerance"], color=palette[k], linestyle="--", linewidth=0.8, alpha=0.8)
        if line.get("culprit") is not None and line["culprit"] in xs:
            j = xs.index(line["culprit"])
            ax.scatter([xs[j]], [ys[j]], marker="X", s=70, color=FAIL_COLOUR, zorder=4)
            ax.annotate(f"first divergence: {_short(names[xs[j]], 32)}", (xs[j], ys[j]), xytext=(6, 8),
                        textcoords="offset points", fontsize=8, color=FAIL_COLOUR)
    _log_y(ax)
    if values:
        ax.set_ylim(min(values) / 4, max(values + [line.get("tolerance") or 0 for line in lines]) * 6)
    ticks = sorted(names)
    step = max(1, math.ceil(len(ticks) / 14))
    shown = ticks[::step]
    ax.set_xticks(shown, [_short(names[i], 18) for i in shown], rotation=40, ha="right", fontsize=7)
    ax.set_xlabel("source layer, in execution order")
    ax.set_ylabel("max relative error of the\nlayer's output (log scale)")
    ax.legend(fontsize=7.5, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=min(4, len(lines)), frameon=False,
              title="dashed: each artifact's agreement tolerance", title_fontsize=7, alignment="left")
    return _svg(fig, "Per-layer divergence between the source and each localized artifact")


@_plot("pareto")
def pareto(label: str, measure: str, limit: float, candidates: list[dict]) -> str:
    """Weight bytes against the budget's measure for every assignment ``--quantize auto`` evaluated: the single
    schemes (squares), the search's path (dots), the made artifact (a star), and the budget (dashed)."""
    fig, ax = _figure(height=3.6)
    unit, divisor = ("MB", 1 << 20) if max((c["weight_bytes"] for c in candidates), default=0) > 2 << 20 else ("KB", 1 << 10)
    floor = max(limit / 1000, 1e-6)
    for c in candidates:
        x, y = c["weight_bytes"] / divisor, max(c["cost"], floor)
        kind = "made" if c.get("made") else "single" if c["label"].startswith("all ") else "path"
        style = {"made": ("*", 150, "#2f855a"), "single": ("s", 40, "#805ad5"), "path": ("o", 22, "#2b6cb0")}[kind]
        ax.scatter([x], [y], marker=style[0], s=style[1], color=style[2], zorder=3 if kind != "made" else 4,
                   edgecolors=FAIL_COLOUR if not c["within"] else "white", linewidths=1.0)
        if kind != "path":
            ax.annotate(c["label"].replace("made ", "chosen "), (x, y), xytext=(6, 5), textcoords="offset points",
                        fontsize=7.5, color="#1a202c")
    ax.axhline(limit, color=FAIL_COLOUR, linestyle="--", linewidth=0.9)
    ax.annotate(f"budget {limit:g}", (0, limit), xycoords=("axes fraction", "data"), xytext=(4, 4),
                textcoords="offset points", fontsize=7.5, color=FAIL_COLOUR)
    ax.set_yscale("symlog", linthresh=floor * 10)
    ax.set_xlabel(f"weight bytes ({unit})")
    ax.set_ylabel(measure)
    ax.set_title(label, fontsize=9, loc="left")
    return _svg(fig, f"Size against {measure} for every per-layer assignment evaluated ({label})")


@_plot("contributions")
def contributions(label: str, rows: list[dict]) -> str:
    """Per layer (ranked): the output noise its compression causes alone (bars, dB) and its own output's error
    against the reference artifact at the same point (dots, right axis)."""
    shown = rows[:20]
    fig, ax = _figure(height=0.9 + 0.22 * len(shown))
    ys = list(range(len(shown)))[::-1]
    alone = [r.get("noise_alone_db") for r in shown]
    base = min([a for a in alone if a is not None] or [-100.0]) - 5
    ax.barh(ys, [(a if a is not None else base) - base for a in alone], left=base, color="#c05621", height=0.6)
    ax.set_yticks(ys, [_short(r["layer"], 34) for r in shown], fontsize=7)
    ax.set_xlabel("output noise when only this layer is compressed (dB, higher is worse)")
    at_point = [(y, r.get("error_at_layer")) for y, r in zip(ys, shown) if r.get("error_at_layer") is not None]
    if at_point:
        twin = ax.twiny()
        twin.scatter([e for _, e in at_point], [y for y, _ in at_point], color="#2b6cb0", s=14, zorder=4)
        twin.set_xscale("log")
        twin.set_xlabel("dots: this layer's output against the reference at the same point (max relative error)",
                        fontsize=7.5)
    ax.set_title(label, fontsize=9, loc="left", pad=28 if at_point else 6)
    return _svg(fig, f"Per-layer contributions to the compression error ({label})")


def _figure(height: float, width: float = 7.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, which="major", color="#e2e8f0", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _style(name: str):
    import matplotlib

    return matplotlib.rc_context({
        "svg.fonttype": "path",  # glyphs as paths: no font needed where the report is opened
        "svg.hashsalt": f"deploykit-{name}",  # deterministic ids, distinct between the plots of one page
        "font.family": "DejaVu Sans", "font.size": 9, "axes.edgecolor": "#4a5568", "axes.labelcolor": "#1a202c",
        "xtick.color": "#4a5568", "ytick.color": "#4a5568", "hatch.linewidth": 0.8,
    })


def _svg(fig, description: str) -> str:
    buffer = io.StringIO()
    # No metadata block (its date would change every run, and it names matplotlib's web site).
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
                facecolor="white")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # the XML prologue and doctype do not belong inside HTML
    # Inside HTML the parser puts <svg> and xlink:href in their namespaces itself: the declarations (URLs,
    # though never fetched) go, so the page names no URL at all.
    head, rest = text.split(">", 1)
    head = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", head)
    from html import escape

    return head.replace("<svg ", f'<svg role="img" aria-label="{escape(description)}" ', 1) + ">" + rest


def _log_y(ax) -> None:
    """A log y axis with ticks and plain-text labels ("10⁻⁶") at powers of ten only: matplotlib's default
    mathtext labels and its eight minor ticks per decade take most of the drawing time otherwise."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
    ax.yaxis.set_minor_locator(NullLocator())


def _power_of_ten(value: float, _position=None) -> str:
    if value <= 0:
        return ""
    exponent = round(math.log10(value))
    if not math.isclose(value, 10.0 ** exponent, rel_tol=1e-6):
        return f"{value:g}"
    return "1" if exponent == 0 else "10" + str(exponent).translate(_SUPERSCRIPT)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _target_legend(ax, targets: set[str]) -> None:
    from matplotlib.lines import Line2D

    from deploykit.targets import TARGETS

    handles = [Line2D([], [], linestyle="", marker=t.plot_marker, color=t.plot_colour, label=t.plot_title)
               for name, t in TARGETS.items() if name in targets]
    handles.append(Line2D([], [], linestyle="", marker="o", markerfacecolor="#a0aec0", markeredgecolor=FAIL_COLOUR,
                          markeredgewidth=1.6, label="red edge: fails parity"))
    ax.legend(handles=handles, fontsize=7.5, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, frameon=False)


def _palette(n: int) -> list[str]:
    colours = ["#2b6cb0", "#c05621", "#2f855a", "#805ad5", "#b83280", "#2c7a7b", "#975a16", "#4a5568", "#c53030",
               "#3182ce"]
    return [colours[i % len(colours)] for i in range(n)]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def _target_style(target: str, attribute: str, default):
    """A target's plot style (``deploykit.targets``); ``default`` for a target an old record names."""
    from deploykit.targets import TARGETS

    found = TARGETS.get(target)
    return getattr(found, attribute) if found is not None else default
