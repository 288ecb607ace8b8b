"""``report.html``: the self-contained HTML page ``convert`` and ``build`` write beside their JSON records.

``html`` renders a record (tables, inline SVG plots from ``plots``), ``write`` writes it atomically,
``latency`` gives each artifact its host latency (LiteRT measured; Core ML estimated by ``coreml_cost``)
and ``source`` the source model's inspection. Nothing heavy is imported here: matplotlib is imported only
when a plot is drawn, so ``deploykit --help`` stays instant.
"""

REPORT_HTML = "report.html"
