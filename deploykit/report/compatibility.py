"""report.html's *Accelerator compatibility* section: per artifact, per accelerator, how many of its ops the
accelerator takes and which it refuses, with the analyzer's reasons (the record's ``compatibility`` block,
filled by ``Target.compatibility`` at conversion).

A block is ``{"static", "checked_with", "accelerators": [{"name", "title", "ops", "supported", "refused":
[{"op", "count", "reason"}], ...}], "notes"}`` or ``{"unavailable": why}``. A static block (no runtime was
asked: Core ML off macOS) is marked as such on every row: it reads the file, it does not say what a device's
runtime will accept. Hooks: ``section#compatibility`` with one ``tr.accelerator`` per (artifact, accelerator),
``data-target``, ``data-variant``, ``data-accelerator``, ``data-ops``, ``data-supported``, ``data-refused`` (ops
refused, summed over their types) and ``data-static``; an accelerator the analyzer could not check (its entry's
``unavailable``: LiteRT's analyzer no longer checks ops for the GPU delegate) and an artifact whose whole analysis
is unavailable are ``tr.accelerator.unavailable`` rows with ``data-unavailable``.
"""

from __future__ import annotations

import re

from deploykit.report import cells

STATIC_NOTE = "static reading of the file: no runtime was asked on this machine, so nothing here proves an op runs on it"


def section(artifacts: list[dict], suffix: str) -> str:
    """The section, or "" when no artifact carries a block (a record from before deploykit analysed them)."""
    if not any(a.get("compatibility") for a in artifacts):
        return ""
    head = ["artifact", "accelerator", "ops on it", "refused ops (count: reason)", "checked with"]
    lines = [f'<section id="compatibility{suffix}" class="compatibility"><h2>Accelerator compatibility</h2>',
             '<table class="compatibility"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for artifact in artifacts:
        lines.extend(_rows(artifact))
    lines.append("</tbody></table>")
    lines.append('<p class="note">Per artifact, the ops each accelerator of its target takes, as the target\'s own '
                 "analyzer says (LiteRT's GPU compatibility checker and XNNPACK delegation for TFLite, the delegate "
                 "for ExecuTorch, where portable ops are the refused ones). A <em>static</em> row reads the file without "
                 "asking a runtime; it cannot show that every op runs on the accelerator. <code>deploykit build</code>'s "
                 "<code>require_accelerators</code> gates a model on these figures (docs/build.md).</p></section>")
    return "\n".join(lines)


def _rows(artifact: dict) -> list[str]:
    block = artifact.get("compatibility")
    ident = {"target": artifact["target"], "variant": artifact["variant"]}
    label = f'{cells.e(artifact["target"])} {cells.e(artifact["variant"])}'
    if not block or "unavailable" in (block or {}):
        why = (block or {}).get("unavailable") or "not analysed (the record has no compatibility block)"
        data = _data({**ident, "unavailable": why})
        return [f'<tr class="accelerator unavailable" {data}><td class="artifact">{label}</td>'
                f'<td colspan="4"><span class="unavailable">analysis unavailable: {_plain(why)}</span></td></tr>']
    accelerators = block.get("accelerators") or []
    static = bool(block.get("static"))
    about = _about(block)
    if not accelerators:
        return [f'<tr class="accelerator unavailable" {_data({**ident, "unavailable": "no accelerator analysed"})}>'
                f'<td class="artifact">{label}</td><td colspan="3"><span class="unchecked">no accelerator analysed</span></td>'
                f'<td class="checked-with">{about}</td></tr>']
    rows = []
    for number, acc in enumerate(accelerators):
        unavailable = acc.get("unavailable")
        entry_static = (static or bool(acc.get("static")) or acc.get("supported") is None) and not unavailable
        refused = acc.get("refused") or []
        classes = (["accelerator"] + (["static"] if entry_static else []) + (["unavailable"] if unavailable else [])
                   + (["refused"] if refused else []))
        data = _data({**ident, "accelerator": acc.get("name"), "ops": acc.get("ops"), "supported": acc.get("supported"),
                      "refused": sum(int(r.get("count") or 0) for r in refused), "static": cells.json_bool(entry_static),
                      "unavailable": unavailable})
        first = number == 0
        span = f' rowspan="{len(accelerators)}"' if len(accelerators) > 1 else ""
        cells_ = [f'<td class="artifact"{span}>{label}</td>'] if first else []
        cells_ += [f'<td class="accelerator">{cells.e(acc.get("title") or acc.get("name"))}'
                   f'<div class="small">{cells.e(acc.get("name"))}</div></td>',
                   f'<td class="ops num">{_supported(acc, entry_static)}</td>',
                   f'<td class="refused">{_refused(acc, refused)}</td>']
        if first:
            cells_.append(f'<td class="checked-with"{span}>{about}</td>')
        rows.append(f'<tr class="{" ".join(classes)}" {data}>' + "".join(cells_) + "</tr>")
    return rows


def _supported(acc: dict, static: bool) -> str:
    ops, supported = acc.get("ops"), acc.get("supported")
    badge = f' <span class="static" title="{cells.e(STATIC_NOTE)}">static</span>' if static else ""
    if acc.get("unavailable"):  # the analyzer could not say (its reason is in the refused cell)
        return f'<span class="unchecked">not checked</span> ({cells.e(ops if ops is not None else "?")} ops)'
    if supported is None:  # a static reading counts the ops, not where they run
        return f'<span class="unchecked">{cells.e(ops if ops is not None else "?")} ops</span>{badge}'
    verdict = "pass" if ops is not None and supported == ops and not static else ("unchecked" if static else "fail")
    return f'<span class="{verdict}">{int(supported)} of {cells.e(ops)}</span>{badge}'


def _refused(acc: dict, refused: list[dict]) -> str:
    parts = [f'<div class="unavailable">unavailable: {_plain(acc["unavailable"])}</div>'] if acc.get("unavailable") else []
    parts += [f'<div class="refused-op" data-op="{cells.e(r.get("op"))}" data-count="{int(r.get("count") or 0)}">'
             f'<span class="op">{cells.e(r.get("op"))}</span> × {int(r.get("count") or 0)}'
             + (f': <span class="small">{_plain(r.get("reason"))}</span>' if r.get("reason") else "") + "</div>"
             for r in refused]
    extra = [(key, value) for key, value in acc.items()
             if key not in ("name", "title", "ops", "supported", "refused", "static", "unavailable")
             and value not in (None, [], {})]
    for key, value in extra:  # a static entry's readings (Core ML: op types, dtypes)
        parts.append(f'<div class="small" data-field="{cells.e(key)}">{cells.e(key.replace("_", " "))}: {_plain(_text(value))}</div>')
    return "".join(parts) or "-"


def _about(block: dict) -> str:
    text = f'<div class="small">{_plain(block.get("checked_with") or "-")}</div>'
    if block.get("static"):
        text = f'<span class="static" title="{cells.e(STATIC_NOTE)}">static: no runtime asked</span>' + text
    shown = {a.get("unavailable") for a in block.get("accelerators") or []}  # already in its accelerator's row
    notes = [n for n in block.get("notes") or [] if n not in shown]
    if notes:
        text += '<ul class="notes">' + "".join(f"<li>{_plain(n)}</li>" for n in notes) + "</ul>"
    return text


def _text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} × {v}" if isinstance(v, int) else f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _plain(text) -> str:
    """A record's text, escaped, with any link's scheme dropped: the page names no URL (a note citing Apple's
    documentation reads "developer.apple.com/..."), so nothing on it points off the page."""
    return cells.e(_SCHEME.sub("", "" if text is None else str(text)))


_SCHEME = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _data(attrs: dict) -> str:
    return " ".join(f'data-{k}="{_plain(v)}"' for k, v in attrs.items() if v is not None)
