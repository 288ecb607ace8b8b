"""report.html's stylesheet, inlined into the page (no external URL)."""

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
.estimate{font-style:italic}.estimate-label{color:#975a16}.slower-note{color:#975a16;max-width:28em}
.note{color:#4a5568;font-size:12.5px}
ul.notes{color:#4a5568;font-size:12px;padding-left:18px}
.side-by-side{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:0 20px;align-items:start}
section.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:0 16px;align-items:start}
section.plots>h2,section.plots>p{grid-column:1/-1}
figure.plot{margin:14px 0;padding:10px;background:#fff;border:1px solid #e2e8f0;border-radius:6px;max-width:780px}
figure.plot svg{display:block;width:100%;height:auto}
figcaption{font-size:12.5px;color:#4a5568;margin-top:6px}
table.compatibility{width:100%}table.compatibility .op{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
tr.accelerator.refused{background:#fff5f5}tr.accelerator.static,tr.accelerator.unavailable{background:#fffaf0;color:inherit}
span.static{color:#975a16;background:#fffaf0;border:1px solid #f6e05e;border-radius:3px;padding:0 4px;font-size:11.5px;
font-weight:600;white-space:nowrap}table.compatibility div.unavailable{padding:2px 6px}
footer{color:#718096;font-size:12px;margin-top:24px}
"""
