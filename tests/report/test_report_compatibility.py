"""report.html's Accelerator compatibility section, from a real conversion's record.

``cumsum-record.json`` is the record of ``deploykit convert cumsum.pt2 --to tflite,coreml,executorch --samples 2``
(``tests/zoo/accelerator_nets.py``: a convolution, a ReLU and a cumulative sum over channels) on this machine:
XNNPACK and ExecuTorch's XNNPACK delegate refuse the CUMSUM, LiteRT 2.3.0's analyzer does not check ops for the GPU
delegate (the entry says so), and Core ML off macOS is a static reading.
"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from deploykit.report.html import render_build_report, render_report
from tests.report.report_helpers import assert_self_contained

RECORD = json.loads((Path(__file__).parent / "cumsum-record.json").read_text())
DIGITS = json.loads((Path(__file__).parent / "digits-record.json").read_text())


class Rows(HTMLParser):
    """Each ``tr.accelerator``: its classes, data-* attributes, text, and its refused ops (data-op, data-count)."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "accelerator" in (a.get("class") or "").split():
            self._row = {**{k[5:]: v for k, v in a.items() if k.startswith("data-")},
                         "classes": a["class"].split(), "text": "", "refused_ops": []}
            self.rows.append(self._row)
        elif self._row is not None and "data-op" in a:
            self._row["refused_ops"].append((a["data-op"], int(a["data-count"])))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None:
            self._row["text"] += data


def rows(page: str) -> dict[tuple, dict]:
    parser = Rows()
    parser.feed(page)
    return {(r["target"], r["variant"], r.get("accelerator")): r for r in parser.rows}


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(RECORD, inspection=RECORD["inspection"])


def test_one_row_per_artifact_and_accelerator_with_the_records_figures(page):
    found = rows(page)
    assert list(found) == [("tflite", "fp32", "gpu"), ("tflite", "fp32", "xnnpack"), ("coreml", "fp32", "coreml-static"),
                           ("executorch", "fp32", "delegate")]
    for artifact in RECORD["artifacts"]:
        for acc in artifact["compatibility"]["accelerators"]:
            row = found[(artifact["target"], artifact["variant"], acc["name"])]
            assert row["ops"] == str(acc["ops"]) and row.get("supported") == (None if acc["supported"] is None else str(acc["supported"]))
            assert row["refused_ops"] == [(r["op"], r["count"]) for r in acc["refused"]]
            assert int(row["refused"]) == sum(r["count"] for r in acc["refused"])
    xnnpack = found[("tflite", "fp32", "xnnpack")]
    assert "refused" in xnnpack["classes"] and "4 of 5" in xnnpack["text"] and xnnpack["refused_ops"] == [("CUMSUM", 1)]
    assert "not taken by the XNNPACK delegate (ai-edge-litert 2.3.0)" in xnnpack["text"]  # the analyzer's words
    delegate = found[("executorch", "fp32", "delegate")]
    assert delegate["refused_ops"] == [("aten::cumsum.out", 1)] and "3 of 4" in delegate["text"]
    assert "portable CPU kernels" in delegate["text"]


def test_static_and_unchecked_accelerators_are_marked_never_shown_as_passing(page):
    found = rows(page)
    coreml = found[("coreml", "fp32", "coreml-static")]
    assert coreml["static"] == "true" and "static" in coreml["classes"] and "supported" not in coreml
    assert "static: no runtime asked" in coreml["text"] and "3 ops" in coreml["text"]
    assert "op types: conv × 1, cumsum × 1, relu × 1" in coreml["text"]  # the static entry's own readings
    gpu = found[("tflite", "fp32", "gpu")]
    assert "unavailable" in gpu["classes"] and gpu["static"] == "false" and "not checked" in gpu["unavailable"]
    assert "unavailable: not checked" in gpu["text"]
    assert 'class="pass"' not in page.split('id="compatibility"')[1].split("</section>")[0]  # nothing here passes
    assert page.count("checks no op for the GPU delegate") == 2  # the row and its data-unavailable, not the notes too


def test_an_unavailable_analysis_says_why_and_an_old_record_has_no_section():
    broken = copy.deepcopy(RECORD)
    broken["artifacts"][0]["compatibility"] = {"unavailable": "the TFLite (LiteRT) analysis failed: <b>bad</b> file"}
    broken["artifacts"][1]["compatibility"] = None
    found = rows(render_report(broken))
    assert found[("tflite", "fp32", None)]["unavailable"] == "the TFLite (LiteRT) analysis failed: <b>bad</b> file"
    assert "analysis unavailable: the TFLite (LiteRT) analysis failed: <b>bad</b> file" in found[("tflite", "fp32", None)]["text"]
    assert "not analysed" in found[("coreml", "fp32", None)]["text"]
    assert "<b>bad" not in render_report(broken)  # escaped
    assert 'id="compatibility"' not in render_report(DIGITS)  # a record from before the analysis: page unchanged


def test_the_page_stays_self_contained_and_deterministic(page):
    assert_self_contained(page)  # Core ML's notes cite Apple's documentation: shown without a scheme, never a link
    assert "developer.apple.com/documentation/coreml" in page
    assert render_report(RECORD, inspection=RECORD["inspection"]) == page
    build = {"jobs": [{"status": "ok"}] * 3, "workers": 1, "seconds": 1.0, "bundles": [], "gates": []}
    several = render_build_report(build, [(RECORD, None, None), (dict(RECORD, source={"name": "second"}), None, None)])
    assert 'id="compatibility-cumsum"' in several and 'id="compatibility-second"' in several
