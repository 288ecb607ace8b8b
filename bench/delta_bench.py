"""Delta updates of a fine-tuned MobileNetV2, measured on the wire: bytes for v1 -> v2 as a delta, as the whole
bundle and as a bsdiff4 patch of the bundle, for TFLite (Android) and Core ML (iOS) bundles.

The app's classifier: tests/zoo/torch_nets.py's MobileNetV2 (width 1.0, seeded BatchNorm statistics) with its
1000-class classifier replaced by a 10-class Linear (1280 -> 10), as an app team's fine-tuned model has. v1 is that
network with seeded weights. Two fine-tunes of it:

- ``head``: only the last Linear changed (every weight and bias moved by 1 % of the layer's spread);
- ``blocks``: the last three blocks of ``features`` (the last two inverted residual blocks, 160 -> 160 and
  160 -> 320, and the final 1x1 convolution to 1280, with their BatchNorm weights and statistics) and the Linear
  changed the same way.

Each version is converted with ``deploykit convert --to tflite,coreml`` (fp32, and ``--quantize fp16`` unless
``--no-fp16``), bundled (v1 as 1.0.0, the fine-tunes as 1.1.0, same name, labels and normalization), and published
to one repository per fine-tune (v1, then the fine-tune). The repositories are served over HTTP on 127.0.0.1 by a
``ThreadingHTTPServer`` whose handler counts every byte it reads from and writes to the socket (request line and
headers, response headers and bodies). The reference client (``deploykit pull``, a separate process) installs v1
on a fresh device, then the counters start and it pulls the fine-tune: once as a delta (the default), once on
another fresh v1 device with ``--no-delta``. The bsdiff4 figure is what a patch-based updater would move: the same
signed channel index and release, then ``bsdiff4.diff(v1 bundle, v2 bundle)`` served as a file (the patched
bundle would then be verified like a downloaded one).

Writes bench/results/delta.md and delta.json. Run: ``nice -n 10 .venv/bin/python bench/delta_bench.py``
(about 10 minutes on 2 cores, most of it converting; bsdiff4 1.3.2: ``pip install -c constraints.txt bsdiff4==1.3.2``).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform as host
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
NAME = "com.example.flowers"
CASES = {"head": "last Linear (1280 -> 10) only", "blocks": "last three blocks of features + the Linear"}
GOAL = 5.0  # percent of the whole download, head-only fine-tune


# -- the models --------------------------------------------------------------------------------------------------
def classifier(case: str | None):
    import torch

    from tests.zoo.torch_nets import build

    model = build("mobilenet_v2", 0)
    torch.manual_seed(1)
    model.classifier[1] = torch.nn.Linear(1280, 10)
    model.eval()
    if case is None:
        return model
    modules = [model.classifier[1]] + (list(model.features)[-3:] if case == "blocks" else [])
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in modules:
            tensors = list(module.named_parameters()) + [(n, b) for n, b in module.named_buffers() if "running_" in n]
            for name, tensor in tensors:
                spread = float(tensor.std()) if tensor.numel() > 1 else 1.0
                tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.01 * spread)
                if name.endswith("running_var"):
                    tensor.clamp_(min=1e-3)
    return model


def export(case: str | None, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    program = torch.export.export(classifier(case), (torch.rand(1, 3, 224, 224),))
    torch.export.save(program, str(path))


def deploykit(*args, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"deploykit {' '.join(map(str, args[:2]))} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


# -- the counting server -----------------------------------------------------------------------------------------
class _Counted:
    def __init__(self, stream, counter: list, index: int):
        self._stream, self._counter, self._index = stream, counter, index

    def write(self, data):
        self._counter[self._index] += len(data)
        return self._stream.write(data)

    def readline(self, *args):
        line = self._stream.readline(*args)
        self._counter[self._index] += len(line)
        return line

    def read(self, *args):
        data = self._stream.read(*args)
        self._counter[self._index] += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Counts the bytes of each request (one per connection: HTTP/1.0) read from and written to the socket."""

    def setup(self):
        super().setup()
        self.counted = [0, 0]  # received, sent
        self.rfile = _Counted(self.rfile, self.counted, 0)
        self.wfile = _Counted(self.wfile, self.counted, 1)

    def finish(self):
        super().finish()
        self.server.log.append({"path": getattr(self, "path", "?"), "received": self.counted[0], "sent": self.counted[1]})

    def log_message(self, *args):
        pass


class Server:
    def __init__(self, root: Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(root)))
        self.httpd.log = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def take(self) -> list[dict]:
        log, self.httpd.log = self.httpd.log, []
        return log

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wire(log: list[dict]) -> int:
    return sum(r["received"] + r["sent"] for r in log)


# -- the run -----------------------------------------------------------------------------------------------------
def convert_all(work: Path, fp16: bool) -> dict[str, Path]:
    dists = {}
    for case in (None, *CASES):
        label = case or "v1"
        dist = work / "dist" / label
        dists[label] = dist
        if (dist / "deploykit-report.json").exists():
            continue
        source = work / "src" / label / "mobilenet_v2.pt2"
        export(case, source)
        started = time.time()
        deploykit("convert", source, "--to", "tflite,coreml", "--out", dist, *(["--quantize", "fp16"] if fp16 else []),
                  cwd=work)
        print(f"converted {label} in {time.time() - started:.0f} s", flush=True)
    return dists


def artifacts(dist: Path) -> list[Path]:
    return sorted(p for p in dist.iterdir() if p.suffix in (".tflite", ".mlpackage"))


def bundle_all(work: Path, dists: dict[str, Path]) -> dict[str, dict[tuple[str, str], Path]]:
    keys = work / "keys"
    if not (keys / "deploykit.key").exists():
        deploykit("keygen", "--out", keys, cwd=work)
    labels = work / "labels.txt"
    labels.write_text("".join(f"flower_{i}\n" for i in range(10)))
    bundles = {}
    for label, dist in dists.items():
        out = work / "bundles" / label
        shutil.rmtree(out, ignore_errors=True)
        done = deploykit("bundle", *artifacts(dist), "--name", NAME, "--version", "1.0.0" if label == "v1" else "1.1.0",
                         "--labels", labels, "--mean", "127.5", "--std", "127.5", "--sign-key", keys / "deploykit.key",
                         "--out", out, "--json", cwd=work)
        bundles[label] = {(b["platform"], b["variant"]): work / b["bundle"] for b in json.loads(done.stdout)["bundles"]}
    return bundles


def manifest_stats(bundle: Path) -> dict:
    import base64
    import zipfile

    with zipfile.ZipFile(bundle) as archive:
        envelope = archive.read("manifest.json")
    manifest = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    return {"manifest_bytes": len(envelope), "files": len(manifest["files"]),
            "chunks": sum(len(f.get("chunks", ())) for f in manifest["files"])}


def install_v1(work: Path, server: Server, case: str, slot: tuple[str, str]) -> None:
    """Two fresh devices with v1 (the whole bundle, as a first install): the devices before the update."""
    platform, variant = slot
    for method in ("delta", "whole"):
        dest = work / "devices" / f"{case}-{platform}-{variant}-{method}"
        shutil.rmtree(dest, ignore_errors=True)
        done = deploykit("pull", "--repo", f"{server.url}repo-{case}/", "--channel", "stable", "--name", NAME,
                         "--trusted-key", work / "keys" / "deploykit.pub", "--platform", platform, "--variant", variant,
                         "--dest", dest, "--json", cwd=work)
        assert json.loads(done.stdout)["version"] == "1.0.0"


def measure(work: Path, server: Server, case: str, slot: tuple[str, str], bundles: dict) -> dict:
    import bsdiff4

    platform, variant = slot
    repo_url = f"{server.url}repo-{case}/"
    common = ["--repo", repo_url, "--channel", "stable", "--name", NAME, "--trusted-key", work / "keys" / "deploykit.pub",
              "--platform", platform, "--variant", variant, "--json"]
    row = {"case": case, "platform": platform, "variant": variant}
    for method in ("delta", "whole"):
        dest = work / "devices" / f"{case}-{platform}-{variant}-{method}"
        server.take()
        started = time.time()
        done = deploykit("pull", *common, "--dest", dest, *(["--no-delta"] if method == "whole" else []), cwd=work)
        seconds = time.time() - started
        log = server.take()
        result = json.loads(done.stdout)
        assert result["status"] == "updated" and result["version"] == "1.1.0", result
        row[method] = {"wire_bytes": wire(log), "requests": len(log), "client_body_bytes": result["transfer"]["bytes"],
                       "method": result["transfer"]["method"], "seconds": round(seconds, 2),
                       **{k: result["transfer"][k] for k in ("chunks", "chunks_fetched", "bytes_reused") if k in result["transfer"]}}
        if method == "whole":
            row["metadata_wire_bytes"] = wire([r for r in log if r["path"].split("/")[-2] in ("channels", "releases")])
            row["installed_files"] = sorted(str(p.relative_to(dest)) for p in (dest / NAME / "current").resolve().rglob("*") if p.is_file())
        else:
            row["installed_tree"] = _tree_hash((dest / NAME / "current").resolve())
    row["identical_install"] = row.pop("installed_tree") == _tree_hash(
        (work / "devices" / f"{case}-{platform}-{variant}-whole" / NAME / "current").resolve())
    old, new = bundles["v1"][slot].read_bytes(), bundles[case][slot].read_bytes()
    started = time.time()
    patch = bsdiff4.diff(old, new)
    diff_seconds = time.time() - started
    assert bsdiff4.patch(old, patch) == new
    patches = work / "served" / f"repo-{case}" / "patches"
    patches.mkdir(parents=True, exist_ok=True)
    (patches / f"{platform}-{variant}.bsdiff").write_bytes(patch)
    server.take()
    with urllib.request.urlopen(f"{repo_url}patches/{platform}-{variant}.bsdiff") as response:
        assert response.read() == patch
    row["bsdiff4"] = {"patch_bytes": len(patch), "wire_bytes": row["metadata_wire_bytes"] + wire(server.take()),
                      "diff_seconds": round(diff_seconds, 1)}
    row["bundle_bytes"] = len(new)
    row["manifest"] = manifest_stats(bundles[case][slot])
    full = row["whole"]["wire_bytes"]
    for method in ("delta", "bsdiff4"):
        row[method]["percent_of_whole"] = round(100 * row[method]["wire_bytes"] / full, 2)
    return row


def _tree_hash(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_results(rows: list[dict], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "delta.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    target = {"android": "TFLite (Android)", "ios": "Core ML (iOS)"}
    lines = [
        "# Delta updates of a fine-tuned MobileNetV2 (bench/delta_bench.py)",
        "",
        f"MobileNetV2 (tests/zoo/torch_nets.py, width 1.0) with a 10-class head (Linear 1280 -> 10) in place of the "
        f"1000-class classifier; v1 seeded, then two fine-tunes of it: **head** ({CASES['head']}) and **blocks** "
        f"({CASES['blocks']}), every changed value moved by 1 % of its tensor's spread. Each converted with "
        f"`deploykit convert --to tflite,coreml` (fp32{', and `--quantize fp16`' if meta['fp16'] else ''}), bundled (1.0.0 -> 1.1.0) and "
        "published; the reference client (`deploykit pull`) updates a device that has v1 installed, over HTTP from a "
        "ThreadingHTTPServer on 127.0.0.1 that counts every byte it reads and writes on the socket (requests, response "
        "headers and bodies); every column is bytes on the wire for the whole update. The bsdiff4 column is the same "
        "channel index and release plus `bsdiff4.diff(v1 bundle, v2 bundle)` served as a file.",
        "",
        "| fine-tune | target | variant | delta (bytes) | whole bundle (bytes) | bsdiff4 (bytes) | delta % of whole | "
        "bsdiff4 % of whole | chunks fetched | same files installed |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {target[r['platform']]} | {r['variant']} | {r['delta']['wire_bytes']:,} | "
                     f"{r['whole']['wire_bytes']:,} | {r['bsdiff4']['wire_bytes']:,} | {r['delta']['percent_of_whole']:.2f} % | "
                     f"{r['bsdiff4']['percent_of_whole']:.2f} % | {r['delta'].get('chunks_fetched', '-')} of "
                     f"{r['delta'].get('chunks', '-')} | {'yes' if r['identical_install'] else 'NO'} |")
    head = [r for r in rows if r["case"] == "head"]
    met = {t: all(r["delta"]["percent_of_whole"] < GOAL for r in head if r["platform"] == t) for t in target}
    lines += [
        "",
        f"**Goal (issue 25): a head-only fine-tune updates in under {GOAL:g} % of the full download, on TFLite and Core ML: "
        + ", ".join(f"{target[t]} {'met' if ok else 'NOT met'}" for t, ok in met.items()) + ".**",
        "",
        "What the delta is made of (head-only fine-tune): the channel index and release (as for the whole bundle), the "
        "new bundle's signed manifest (it lists every file's chunks), and the chunks no installed file holds: the "
        "head's weights and bias, the model file's graph/metadata region (the embedded version and sequence change), the "
        "integration code that names the version. Every other tensor keeps its chunk id.",
        "",
        "| fine-tune | target | variant | bundle | manifest (chunks) | delta: requests, body bytes, reused bytes | "
        "pull seconds delta / whole | bsdiff4 patch bytes, diff seconds |",
        "| --- | --- | --- | ---: | --- | --- | --- | ---: |",
    ]
    for r in rows:
        d = r["delta"]
        lines.append(f"| {r['case']} | {target[r['platform']]} | {r['variant']} | {r['bundle_bytes']:,} | "
                     f"{r['manifest']['manifest_bytes']:,} B ({r['manifest']['chunks']} chunks, {r['manifest']['files']} files) | "
                     f"{d['requests']}, {d['client_body_bytes']:,}, {d.get('bytes_reused', 0):,} | {d['seconds']} / "
                     f"{r['whole']['seconds']} | {r['bsdiff4']['patch_bytes']:,}, {r['bsdiff4']['diff_seconds']} |")
    lines += ["", f"Host: {meta['host']}; deploykit {meta['deploykit']}; bsdiff4 {meta['bsdiff4']}; {meta['date']}.", ""]
    (RESULTS / "delta.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="working directory (kept; conversions are reused)")
    parser.add_argument("--no-fp16", action="store_true", help="fp32 artifacts only")
    args = parser.parse_args()
    import bsdiff4

    import deploykit as dk

    work = Path(args.work or tempfile.mkdtemp(prefix="deploykit-delta-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"working in {work}", flush=True)
    dists = convert_all(work, fp16=not args.no_fp16)
    bundles = bundle_all(work, dists)
    served = work / "served"
    shutil.rmtree(served, ignore_errors=True)
    served.mkdir()
    server = Server(served)
    rows = []
    try:
        for case in CASES:
            repo = served / f"repo-{case}"
            for label in ("v1", case):
                deploykit("publish", *bundles[label].values(), "--repo", repo, "--channel", "stable", "--sign-key",
                          work / "keys" / "deploykit.key", cwd=work)
                if label == "v1":
                    for slot in sorted(bundles[case]):
                        install_v1(work, server, case, slot)
            for slot in sorted(bundles[case]):
                rows.append(measure(work, server, case, slot, bundles))
                r = rows[-1]
                print(f"{case} {slot}: delta {r['delta']['wire_bytes']:,} whole {r['whole']['wire_bytes']:,} "
                      f"bsdiff4 {r['bsdiff4']['wire_bytes']:,} ({r['delta']['percent_of_whole']} %)", flush=True)
    finally:
        server.close()
    meta = {"host": f"{host.system()} {host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}",
            "deploykit": getattr(dk, "__version__", "?"), "bsdiff4": bsdiff4.__version__, "fp16": not args.no_fp16,
            "date": time.strftime("%Y-%m-%d"), "work": str(work)}
    write_results(rows, meta)
    print((RESULTS / "delta.md").read_text())


if __name__ == "__main__":
    main()
