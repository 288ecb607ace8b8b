"""report.html from a recorded deploykit-report.json (no conversion): the table holds the record's numbers,
every plot is an inline SVG, the page names no external URL, record strings are escaped, output is
deterministic and written atomically.

``digits-record.json`` is the record of ``convert examples/models/digits.keras --quantize
tflite=int8-weights,coreml=lut4 --localize`` with max_rel_error bounded at 1e-4, so both quantized variants
fail parity and carry their per-layer localization.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from deploykit.report import REPORT_HTML
from deploykit.report.html import render_build_report, render_report
from deploykit.report.write import write_report
from tests.report.report_helpers import PLOTS, assert_rows_match, assert_self_contained, parse

RECORD = json.loads((Path(__file__).parent / "digits-record.json").read_text())


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(RECORD, inspection=RECORD["inspection"])


def test_the_table_has_one_row_per_artifact_with_the_records_numbers(page):
    rows = assert_rows_match(page, RECORD)
    assert [r.attrs["passed"] for r in rows] == ["true", "false", "true", "false"]
    assert [r.latency["source"] for r in rows] == ["litert", "litert", "estimate", "estimate"]
    limit = RECORD["artifacts"][1]["size_limit"]
    assert f"({limit['ratio']:.2f}×)" in rows[1].cells["size-limit"]
    assert rows[0].cells["accuracy"].strip() == "-"  # no validation data in a convert


def test_every_plot_is_an_inline_svg_and_the_page_is_self_contained(page):
    figures = parse(page).figures
    assert figures == {f"plot-{name}": True for name in PLOTS}
    assert_self_contained(page)
    assert page.count("<?xml") == 0 and page.count("<!DOCTYPE") == 1


def test_the_source_section_shows_the_inspection(page):
    inspection = RECORD["inspection"]
    assert 'id="source"' in page and f"({inspection['macs']:,})" in page and f"({inspection['params']:,})" in page
    conv1x1 = inspection["by_layer_type"]["conv1x1"]
    assert f"{conv1x1['macs_percent']:.1f} %" in page


def test_without_inspection_the_page_says_why():
    page = render_report(RECORD, inspection={"unavailable": "the walker does not know op Foo"})
    assert "source inspection unavailable: the walker does not know op Foo" in page
    assert "plot-layer-types" not in page and "plot-size-error" in page


def test_record_strings_are_escaped():
    hostile = copy.deepcopy(RECORD)
    hostile["source"]["name"] = '<script>alert("name")</script>'
    hostile["artifacts"][0]["parity"]["outputs"] = {'<img src=x onerror="1">': hostile["artifacts"][0]["parity"]["outputs"]["logits"]}
    hostile["artifacts"][1]["parity"]["localization"]["layers"][5]["source"] = "<b>layer</b>"
    page = render_report(hostile, inspection={"unavailable": "<i>why</i>"})
    assert "<script" not in page and "<img" not in page and "<b>layer" not in page and "<i>why" not in page
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in page
    assert_self_contained(page)


def test_a_found_culprit_is_marked_and_a_record_without_parity_has_no_error_plots():
    found = copy.deepcopy(RECORD)
    found["artifacts"][3]["parity"]["localization"]["culprit_index"] = 7
    assert "first divergence" not in render_report(RECORD)  # not found in the recorded run: nothing marked
    assert "first divergence" in render_report(found)  # text drawn as paths keeps its string in an SVG comment
    unverified = copy.deepcopy(RECORD)
    for artifact in unverified["artifacts"]:
        artifact["parity"] = None
    figures = parse(render_report(unverified)).figures
    assert set(figures) == {"plot-latency"}  # layer types need the inspection, which was not given


def test_an_infinite_error_is_in_the_table_and_left_out_of_the_plots():
    broken = copy.deepcopy(RECORD)
    broken["artifacts"][3]["parity"]["outputs"]["logits"]["max_rel_error"] = "inf"  # how the record encodes it
    broken["artifacts"][3]["parity"]["localization"]["layers"][-1]["max_rel_error"] = "inf"
    page = render_report(broken)
    (row,) = [r for r in parse(page).rows if r.attrs["variant"] == "lut4"]
    assert row.cells["max-rel-error"] == "∞" and parse(page).figures["plot-size-error"]


def test_rendering_is_deterministic(page):
    assert render_report(RECORD, inspection=RECORD["inspection"]) == page


def test_build_page_suffixes_ids_per_model():
    other = copy.deepcopy(RECORD)
    other["source"]["name"] = "second model"
    build = {"jobs": [{"status": "ok"}] * 8, "workers": 2, "seconds": 12.5, "bundles": [], "gates": []}
    page = render_build_report(build, [(RECORD, RECORD["inspection"], None), (other, None, None)])
    figures = parse(page).figures
    assert "plot-size-error-digits" in figures and "plot-size-error-second-model" in figures and all(figures.values())
    assert len(parse(page).rows) == 8
    assert_self_contained(page)


def test_write_report_replaces_the_page_atomically(tmp_path, monkeypatch):
    path = write_report(tmp_path, RECORD)
    assert path == tmp_path / REPORT_HTML and path.read_text() == render_report(RECORD, inspection=RECORD["inspection"])
    import deploykit.report.html as html

    monkeypatch.setattr(html, "render_report", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        write_report(tmp_path, RECORD)
    assert sorted(p.name for p in tmp_path.iterdir()) == [REPORT_HTML]  # the old page, whole; no temporary file
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_convert_prints_the_report_path(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import deploykit.cli.output
    from deploykit.cli.tables import print_conversion
    from deploykit.core.types import ConversionReport

    write_report(tmp_path, RECORD)
    printed = io.StringIO()
    monkeypatch.setattr(deploykit.cli.output, "terminal", lambda: Console(file=printed, width=400))
    print_conversion(ConversionReport.from_json(RECORD), tmp_path)
    assert f"report: {tmp_path / REPORT_HTML}" in printed.getvalue()


def test_the_inspection_never_fails_the_conversion(monkeypatch):
    import deploykit.inspection as inspection
    from deploykit.core.errors import InputError
    from deploykit.report.source import inspect_source

    class Dim:  # a framework's own integer, as a torch SymInt: no __float__, only __index__
        def __index__(self):
            return 3

    class Found:
        def to_json(self):
            return {"inputs": [{"shape": [1, Dim()]}]}

    monkeypatch.setattr(inspection, "inspect_source", lambda model: Found())
    assert inspect_source(object()) == {"inputs": [{"shape": [1, 3]}]}  # plain JSON for the record

    def refuse(*a, **k):
        raise InputError("no walker for this op", hint="try a newer deploykit")

    monkeypatch.setattr(inspection, "inspect_source", refuse)
    assert inspect_source(object()) == {"unavailable": "no walker for this op (try a newer deploykit)"}
    monkeypatch.setattr(inspection, "inspect_source", lambda model: 1 / 0)
    assert inspect_source(object())["unavailable"].startswith("ZeroDivisionError: division by zero")
