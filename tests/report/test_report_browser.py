"""report.html of a real conversion, opened in headless Chromium: the table and every plot must render.

One conversion: a small Keras MobileNet-style net to TFLite (fp32, int8-weights) and Core ML
(fp32, lut4), parity with max_rel_error bounded at 1e-4 and --localize, so both quantized variants fail
parity (their errors are 1e-3 to 1e-1) and carry their per-layer divergence: the page is written when parity fails,
which is when it is most needed. Then:

- the variants table has one row per artifact holding the record's numbers, and the page is self-contained;
- Chromium dumps the DOM of a copy of the page into which this test injects a script that writes the boxes
  of the table and of each plot's <svg> into the DOM (the product page has no script), then screenshots the
  page at its full height; each box is cropped from the PNG and must hold a drawing, not background.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploykit.core.errors import ParityError
from deploykit.parity.profiles import parse_tolerances
from deploykit import convert
from deploykit.pipeline.request import VerifyOptions
from deploykit.report import REPORT_HTML
from tests.conftest import save_keras
from tests.report.report_helpers import PLOTS, assert_rows_match, assert_self_contained, parse

CONTRIBUTIONS = ("contributions-1", "contributions-3")  # the tflite int8-weights and coreml lut4 rows

CHROMIUM = shutil.which("chromium")
WIDTH = 1280
TIMEOUT = 120
PROBE = """<script>
(() => {
  const boxes = {};
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, r.height]; };
  for (const figure of document.querySelectorAll("figure.plot")) boxes[figure.id] = box(figure.querySelector("svg"));
  boxes["table-variants"] = box(document.querySelector("table.variants"));
  boxes["page"] = [0, 0, document.documentElement.scrollWidth, document.documentElement.scrollHeight];
  document.body.setAttribute("data-boxes", JSON.stringify(boxes));
})();
</script>"""


def test_the_report_of_a_real_conversion_renders_in_chromium(tmp_path):
    """One test, not two sharing a module fixture: xdist may run a module's tests on two workers, and the
    conversion is most of the time. The table is checked without a browser; the rendering needs Chromium."""
    out, record, page = _convert(tmp_path)
    _check_table(out, record, page)
    if CHROMIUM is None:
        pytest.skip("the table passed; rendering needs Chromium on PATH (Debian's chromium; setup.sh installs it)")
    _check_rendering(out, record, page, tmp_path)


def _convert(folder: Path):
    out = folder / "out"
    with pytest.raises(ParityError):
        convert(save_keras("mobilenet", folder), to=("tflite", "coreml"), out=out,
                quantize="tflite=int8-weights,coreml=lut4",
                verify_options=VerifyOptions(samples=4, localize=True, tolerances=parse_tolerances(["max_rel_error=1e-4"])))
    record = json.loads((out / "deploykit-report.json").read_text())
    return out, record, (out / REPORT_HTML).read_text()


def _check_table(out: Path, record: dict, page: str) -> None:
    assert [(a["target"], a["variant"], a["parity"]["passed"]) for a in record["artifacts"]] == [
        ("tflite", "fp32", True), ("tflite", "int8-weights", False), ("coreml", "fp32", True), ("coreml", "lut4", False)]
    rows = assert_rows_match(page, record)
    for row, artifact in zip(rows, record["artifacts"]):
        latency = artifact["latency"]
        assert latency["median_ms"] > 0 and latency["source"] == ("litert" if artifact["target"] == "tflite" else "estimate")
        if artifact["target"] == "tflite":
            assert latency["runs"] >= 10 and latency["delegate"] == "XNNPACK"
        assert (out / artifact["path"]).exists()
    inspection = record["inspection"]
    assert "unavailable" not in inspection, inspection
    # The cost model and the inspection count mult-adds independently (ML Program shapes vs the Keras graph).
    assert record["artifacts"][2]["latency"]["macs"] == inspection["macs"] > 0
    localized = [a for a in record["artifacts"] if a["parity"].get("localization")]
    assert [a["variant"] for a in localized] == ["int8-weights", "lut4"]
    assert all(len(a["parity"]["localization"]["layers"]) > 5 for a in localized)
    assert_self_contained(page)
    # --localize on a compressed variant adds its per-layer contributions plot (quantize/layerwise/localize.py)
    assert parse(page).figures == {f"plot-{name}": True for name in PLOTS + CONTRIBUTIONS}


def _check_rendering(out: Path, record: dict, page: str, tmp_path: Path) -> None:
    probe = out / "report-probe.html"  # beside the page, a copy with the test's script: the product has none
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--dump-dom", probe.as_uri(), height=900).stdout
    boxes = json.loads(html.unescape(re.search(r'data-boxes="([^"]*)"', dom).group(1)))
    assert set(boxes) == {f"plot-{name}" for name in PLOTS + CONTRIBUTIONS} | {"table-variants", "page"}
    assert len(re.findall(r'<tr class="variant[ "]', dom)) == len(record["artifacts"])
    _, _, page_width, page_height = boxes.pop("page")
    assert page_width <= WIDTH

    screenshot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", (out / REPORT_HTML).as_uri(), height=int(page_height) + 20)
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    assert image.size == (WIDTH, int(page_height) + 20)
    for name, (left, top, width, height) in boxes.items():
        assert width > 200 and height > 80, (name, width, height)
        crop = image.crop((int(left), int(top), int(left + width), int(top + height)))
        colours = crop.getcolors(maxcolors=1 << 16) or []
        background = max(colours)[1] if colours else None
        drawn = 1 - max(colours)[0] / (crop.width * crop.height) if colours else 1.0
        # A drawn plot or table: many colours (antialiased text, lines, bars), a real share off the background.
        assert len(colours) > 40 or not colours, (name, len(colours))
        assert drawn > 0.03, (name, f"{drawn:.1%} of the box differs from its background {background}")


def _chromium(profile: Path, action: str, url: str, height: int):
    done = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--force-device-scale-factor=1", f"--user-data-dir={profile / 'chromium-profile'}",
         f"--window-size={WIDTH},{height}", action, url],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done
