"""The tables of bench/results/sparsity.md, written from bench/results/sparsity.json (bench/sparsity_bench.py
measures; ``python bench/sparsity_bench.py --render`` rewrites the page from the stored figures)."""

from __future__ import annotations

# Models whose pairs cannot place a limit, and why (still listed with their sizes and figures).
NO_EVIDENCE = {"mobilenet_v2": "random weights give a near-uniform 1000-class softmax: the same net from another seed "
                               "agrees at cosine 0.98, so no pair tells a right artifact from a wrong one"}


def _mb(n) -> str:
    return "—" if n is None else f"{n / 1e6:.3f} MB" if n < 1e8 else f"{n / 1e6:.1f} MB"


def _num(value) -> float:
    """A metric as stored: a number, or a string JSON cannot hold as one ("-inf", "nan")."""
    return float(value)


def _f(value, spec="{:.4f}") -> str:
    if value is None:
        return "—"
    value = _num(value)
    return spec.format(value) if value == value and abs(value) != float("inf") else str(value)


def render(results: dict) -> str:
    lines = ["# Pruning and sparsity: sizes, download sizes, latency, parity", "",
             "Written by `bench/sparsity_bench.py` (2 shared cores; latencies are LiteRT with XNNPACK, one thread, "
             "`deploykit bench`'s child process, median of 30 runs: noisy, compare within a table). *Download* is the "
             "artifact zipped with DEFLATE level 6, what a compressed transfer costs (HTTP gzip, store packages); a "
             "deploykit bundle stores entries uncompressed (bundle/archive.py: reproducible bytes across zlib builds, "
             "and Android memory-maps `.tflite`), so inside a bundle an artifact costs its file size.", "",
             "What was decided from these figures (docs/quantization.md, 'Pruning and sparsity'):", "",
             "- TFLite `sparse50/75/90` write the pruned float32 weights sparse-encoded (CSR + DENSIFY): LiteRT 2.3 runs "
             "them under XNNPACK with outputs bit-identical to dense zeros, the file (and so the bundle) shrinks, latency "
             "is unchanged within this host's noise, loading takes 50-80 ms longer and peak memory grows by about the "
             "sparse file's size. `sparseNN+int8` keeps its int8 weights dense: XNNPACK refuses DENSIFY of int8 weights.",
             "- The sparse parity profiles sit above the wrong answers (cosine 0.9), not under the measured right pairs: "
             "pruned without retraining, three of four pretrained models fall to where an input-independent answer is.",
             ""]
    lines += _render_litert(results.get("litert"))
    lines += _render_paired(results.get("paired"))
    lines += _render_variants(results.get("variants") or {})
    lines += _render_evidence(results.get("variants") or {})
    lines += _render_constant(results.get("constant"))
    lines += _render_ctc(results.get("ctc"))
    lines += _render_deep(results.get("deep"))
    lines += _render_cli(results.get("cli"))
    return "\n".join(lines) + "\n"


def _render_litert(part) -> list[str]:
    if not part:
        return []
    lines = ["## TFLite: does LiteRT 2.3 run sparse-encoded tensors, and what do they gain?", "",
             f"{part['model']}; conv / dense kernels pruned by deploykit's rule (first layer and weights under 2048 "
             "elements spared; in the TensorFlow rows depthwise kernels are not pruned, in the deploykit rows those of "
             "2048 elements or more are). `EXPERIMENTAL_SPARSITY` is TensorFlow's converter writing the pruned weights "
             "sparse-encoded (SparsityParameters, CSR) behind DENSIFY ops; `deploykit sparseNN` is deploykit's own "
             "writer applied to the unpruned fp32 conversion.", "",
             "| zeros | written as | file | download | DENSIFY ops | median ms | load ms | model RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in part["rows"]:
        t = r["latency"]
        timing = (f"{t['median_ms']:.2f} | {t['load_ms']:.0f} | {t['model_rss_mb']:.1f} MB" if "median_ms" in t
                  else f"refused: {t['error'][:90]} | — | —")
        lines.append(f"| {r['sparsity']:.0%} | {r['written']} | {_mb(r['size_bytes'])} | {_mb(r['download_bytes'])} | "
                     f"{r['densify_ops']} | {timing} |")
    same = part.get("same_outputs", {}).get("max_abs_difference_at_90")
    lines += ["", f"Outputs of the sparse-encoded file and the dense-zeros file at 90 % under XNNPACK: largest difference "
                  f"{same!r} (bit-identical: XNNPACK computes on the densified weights).", ""]
    return lines


def _render_paired(part) -> list[str]:
    if not part:
        return []
    lines = ["### Dense zeros against sparse encoding, timed in alternation", "",
             f"{part['model']}, pruned by deploykit's rule; each file timed {part['rounds']} times in turn (30 runs each), "
             "the median of those medians.", "",
             "| file | size | median ms | load ms (with the first run) | model RSS |", "| --- | --- | --- | --- | --- |"]
    for r in part["rows"]:
        lines.append(f"| {r['file']} | {_mb(r['size_bytes'])} | {r['median_ms']:.2f} | {r['load_ms']:.0f} | {r['model_rss_mb']:.1f} MB |")
    return lines + [""]


def _verdict(parity: dict) -> str:
    verdict = parity.get("passes_now", parity.get("passed"))
    return "—" if verdict is None else "yes" if verdict else "no"


def _row_name(target: str) -> str:
    return {"tflite": "TFLite", "coreml": "Core ML"}[target]


def _render_variants(models: dict) -> list[str]:
    lines = ["## Every scheme on real and random-weight models", "",
             "Parity: the output with the lowest cosine similarity against the source, on the corpus's inputs (real "
             "models) or deploykit's seeded inputs (random nets), each artifact as convert makes it (bias correction "
             "included); *passes* is the verdict under the variant's profile as committed (re-judged on every output's "
             "recorded metrics). Wrong pairs: the same artifact against the same network with each weight's values "
             "shuffled (*shuffled*), against the source whose last conv / dense weight got 50 % noise (*last +50 %*), "
             "and for random nets against the same net from another seed (*other seed*): cosine / SNR dB.", ""]
    for name, model in models.items():
        if "rows" not in model:
            lines += [f"### {name} ({model.get('kind')})", "", f"not measured: {model.get('error')}", ""]
            continue
        lines += [f"### {name} ({model['kind']} weights; {model['source']})", "",
                  *([f"Not used as profile evidence: {NO_EVIDENCE[name]}.", ""] if name in NO_EVIDENCE else []),
                  f"Converted in {model['convert_seconds']} s" + (f"; convert said: {model['error']}" if model.get("error") else "") + ".", "",
                  "| target | variant | file | x fp32 | download | x fp32 | ms (TFLite) | zeros (pruned / all) | cosine | SNR dB | top-1 | passes | wrong: shuffled | last +50 % | other seed |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        fp32_download = {r["target"]: r["download_bytes"] for r in model["rows"] if r["variant"] == "fp32"}
        for r in model["rows"]:
            p = r["parity"]
            t = r.get("latency") or {}
            ms = f"{t['median_ms']:.2f}" if "median_ms" in t else ("refused" if "error" in t else "—")
            sp = r.get("sparsity")
            zeros = f"{sp['prunable_sparsity']:.3f} / {sp['overall_sparsity']:.3f}" if sp else "—"
            wrong = [(r.get("wrong") or {}).get(k) for k in ("weights shuffled", "last weight perturbed 50 %", "another seed")]
            wrong = [f"{_f(w.get('cosine_similarity'), '{:.3f}')} / {_f(w.get('snr_db'), '{:.1f}')}" if w and "error" not in w else "—"
                     for w in wrong]
            lines.append(f"| {_row_name(r['target'])} | {r['variant']} | {_mb(r['size_bytes'])} | "
                         f"{r['size_bytes'] / r['fp32_size_bytes']:.3f} | {_mb(r['download_bytes'])} | "
                         f"{r['download_bytes'] / fp32_download[r['target']]:.3f} | {ms} | {zeros} | "
                         f"{_f(p.get('cosine_similarity'))} | {_f(p.get('snr_db'), '{:.1f}')} | "
                         f"{_f(p.get('top1_agreement'), '{:.3f}')} | {_verdict(p)} | {' | '.join(wrong)} |")
        lines.append("")
    return lines


def _render_evidence(models: dict) -> list[str]:
    """Per sparse scheme: the worst right pair on real and on random models, the closest wrong pair."""
    schemes = sorted({r["variant"] for m in models.values() for r in m.get("rows", []) if r["variant"].startswith("sparse")},
                     key=lambda v: (len(v), v))
    if not schemes:
        return []
    lines = ["## The evidence behind the sparse profiles", "",
             "Right pairs: the variant against its own source (both targets). Wrong pairs: shuffled weights and another "
             "seed (the last-weight perturbation is a mild change, listed above but not used to place limits). Left out: "
             + "; ".join(f"{k}: {v}" for k, v in NO_EVIDENCE.items()) + ".", "",
             "| scheme | real: worst cosine | worst SNR dB | worst top-1 | (model) | random: worst cosine | worst SNR dB | wrong: best cosine | best SNR dB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for scheme in schemes:
        right = {"real": [], "random": []}
        wrong = []
        for name, model in models.items():
            if name in NO_EVIDENCE:
                continue
            for r in model.get("rows", []):
                if r["variant"] != scheme or "cosine_similarity" not in r["parity"]:
                    continue
                right[model["kind"]].append((r["parity"], name))
                for key in ("weights shuffled", "another seed"):
                    w = (r.get("wrong") or {}).get(key)
                    if w and "cosine_similarity" in w:
                        wrong.append(w)
        real, rand = right["real"], right["random"]

        def worst(pairs, key):
            return min((_num(p[key]) for p, _ in pairs if p.get(key) is not None), default=None)

        model_of = min(real, key=lambda x: _num(x[0]["cosine_similarity"]))[1] if real else "—"
        lines.append(f"| {scheme} | {_f(worst(real, 'cosine_similarity'))} | {_f(worst(real, 'snr_db'), '{:.1f}')} | "
                     f"{_f(worst(real, 'top1_agreement'), '{:.3f}')} | {model_of} | {_f(worst(rand, 'cosine_similarity'))} | "
                     f"{_f(worst(rand, 'snr_db'), '{:.1f}')} | "
                     f"{_f(max((_num(w['cosine_similarity']) for w in wrong), default=None))} | "
                     f"{_f(max((_num(w['snr_db']) for w in wrong), default=None), '{:.1f}')} |")
    return lines + [""]


def _render_constant(part) -> list[str]:
    if not part:
        return []
    lines = ["### A wrong model that ignores its input", "",
             "Cosine similarity (per sample, the worst; the parity metric) of each real model's outputs against the "
             "source's own mean output over the samples, the best input-independent answer, and for the CTC recogniser "
             "against blank at every step. A pruned artifact that scores no better has lost the model's function "
             "whatever its cosine: the PP-OCRv4 recogniser pruned 50 % decodes every line to nothing (blank everywhere) "
             "at cosine 0.82.", "", "| model | output | against | cosine |", "| --- | --- | --- | --- |"]
    for name, outputs in part.items():
        for output, values in outputs.items():
            for against, value in values.items():
                lines.append(f"| {name} | {output} | {against} | {value:.4f} |")
    return lines + [""]


def _render_ctc(part) -> list[str]:
    if not part:
        return []
    lines = ["### What the pruned recogniser reads", "",
             f"PP-OCRv4 recogniser, TFLite artifacts, greedy CTC decoding of the 8 data samples (the source reads "
             f"{part['source']['characters']} characters):", "",
             "| artifact | lines read as the source reads them | characters read |", "| --- | --- | --- |"]
    for name, row in part.items():
        if name != "source":
            lines.append(f"| {name} | {row['lines_identical']} / {row['lines']} | {row['characters']} |")
    return lines + ["", "(The two identical lines are the two the source reads as empty.)", ""]


def _render_deep(part) -> list[str]:
    if not part:
        return []
    rows = {(r["target"], r["variant"]): r for r in part["rows"]}
    lines = ["## The deep-compression table (AlexNet)", "",
             "Han et al. (Deep Compression, 2016): AlexNet 240 MB -> 27 MB by pruning (9x fewer weights, with retraining), "
             "35x with quantization and Huffman coding. Here: the ONNX model-zoo AlexNet topology with seeded random weights "
             f"({part['model']}; {part['seconds']} s), pruned without retraining by deploykit's rule, so the sizes are real "
             "and their accuracy is not measured (random weights). Each ratio is fp32 / size.", "",
             "| step | target | variant | zeros (pruned / all) | file | ratio | download (deflate) | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    steps = (("baseline", "fp32"), ("half precision", "fp16"), ("int8 weights", "int8-weights"), ("pruning", "sparse90"),
             ("pruning + 4-bit tables", "sparse90+lut4"), ("pruning + int8", "sparse90+int8"))
    for target in ("coreml", "tflite"):
        base = rows.get((target, "fp32"))
        if base is None:
            continue
        for step, variant in steps:
            r = rows.get((target, variant))
            if r is None:
                continue
            zeros = f"{r['prunable_sparsity']:.3f} / {r['overall_sparsity']:.3f}" if "prunable_sparsity" in r else "—"
            lines.append(f"| {step} | {_row_name(target)} | {variant} | {zeros} | {_mb(r['size_bytes'])} | "
                         f"{base['size_bytes'] / r['size_bytes']:.1f}x | {_mb(r['download_bytes'])} | "
                         f"{base['size_bytes'] / r['download_bytes']:.1f}x |")
    return lines + [""]


def _render_cli(part) -> list[str]:
    if not part:
        return []
    out = part.get("console", "")
    start = out.find("┏")
    table = out[max(0, out.rfind("\n", 0, start) + 1):] if start >= 0 else out[-4000:]
    lines = ["## The command line", "", "```console", f"$ {part['command']}", table.rstrip(), "```", "",
             f"Exit code {part['exit_code']} after {part['seconds']} s. Parity of each artifact (worst output):", "",
             "| artifact | file | cosine | SNR dB | top-1 | passed |", "| --- | --- | --- | --- | --- | --- |"]
    for path, a in part["artifacts"].items():
        lines.append(f"| {path} | {_mb(a['size_bytes'])} | {_f(a.get('cosine_similarity'))} | {_f(a.get('snr_db'), '{:.1f}')} | "
                     f"{_f(a.get('top1_agreement'), '{:.3f}')} | {a.get('passed')} |")
    return lines + [""]
