"""Reading report.html back: the variants table's rows, the plots, and every URL the page names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

PLOTS = ("layer-types", "size-error", "output-error", "latency", "divergence")


@dataclass
class Row:
    attrs: dict
    cells: dict = field(default_factory=dict)  # td class -> text
    values: dict = field(default_factory=dict)  # td class -> [(data-output, data-value)]
    latency: dict = field(default_factory=dict)  # data-ms, data-source
    top1: float | None = None


class ReportParser(HTMLParser):
    """The variants table rows, the figures (id -> whether an <svg> is inside), and every src/href/url."""

    def __init__(self):
        super().__init__()
        self.rows: list[Row] = []
        self.figures: dict[str, bool] = {}
        self.urls: list[str] = []
        self.tags: list[str] = []
        self._row: Row | None = None
        self._cell: str | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href", "xlink:href", "action", "poster"):
            if a.get(key):
                self.urls.append(a[key])
        if tag == "tr" and "variant" in (a.get("class") or "").split():
            self._row = Row({k[5:]: v for k, v in a.items() if k.startswith("data-")})
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = a.get("class")
            self._row.cells[self._cell] = ""
            self._row.values[self._cell] = []
        elif self._row is not None and self._cell is not None:
            if "data-value" in a:
                self._row.values[self._cell].append((a.get("data-output"), float(a["data-value"])))
            if "data-ms" in a:
                self._row.latency = {"ms": float(a["data-ms"]), "source": a.get("data-source")}
            if "data-top1" in a:
                self._row.top1 = float(a["data-top1"])
        if tag == "figure" and "plot" in (a.get("class") or "").split():
            self._figure = a["id"]
            self.figures[self._figure] = False
        elif tag == "svg" and self._figure is not None:
            self.figures[self._figure] = True

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        elif tag == "td":
            self._cell = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        if self._row is not None and self._cell is not None:
            self._row.cells[self._cell] += data


def parse(page: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(page)
    parser.close()
    return parser


def assert_self_contained(page: str) -> None:
    """No script, no stylesheet link, no URL other than a fragment: the page must open offline."""
    parsed = parse(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert all(url.startswith("#") for url in parsed.urls), [u for u in parsed.urls if not u.startswith("#")][:5]
    assert not re.search(r"url\(\s*['\"]?(?!#)", page), "a CSS url() other than a fragment"
    assert "@import" not in page
    found = re.search(r".{0,60}(https?:|ftp:|//[a-z0-9.-]+\.[a-z]{2,}/).{0,40}", page)
    assert found is None, found.group(0)


def assert_rows_match(page: str, record: dict, measurements: dict | None = None) -> list[Row]:
    """One row per artifact of ``record``, in order, each holding the record's own numbers."""
    rows = parse(page).rows
    artifacts = record["artifacts"]
    assert [(r.attrs["target"], r.attrs["variant"], r.attrs["path"]) for r in rows] == \
        [(a["target"], a["variant"], a["path"]) for a in artifacts]
    for row, artifact in zip(rows, artifacts):
        assert int(row.attrs["size-bytes"]) == artifact["size_bytes"] > 0
        parity = artifact.get("parity")
        if parity and "outputs" in parity:
            assert row.attrs["passed"] == {True: "true", False: "false"}[parity["passed"]]
            for key in ("max_rel_error", "cosine_similarity", "snr_db"):
                expected = [(name, float(o[key])) for name, o in parity["outputs"].items() if key in o]
                assert row.values[key.replace("_", "-")] == expected, (key, row.values, expected)
        latency = ((measurements or {}).get(artifact["path"]) or {}).get("latency") or artifact.get("latency")
        if latency and latency.get("median_ms") is not None:
            assert row.latency == {"ms": float(latency["median_ms"]), "source": latency["source"]}
            if latency["source"] == "estimate":
                assert "estimate (op-count cost model, no Core ML runtime on this machine)" in row.cells["latency"]
    return rows
