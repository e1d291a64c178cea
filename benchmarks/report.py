"""The benchmark report: Markdown table, JSON, and two plots."""

import json
import os

from keras_swiftformer.io import atomic_path, write_text
from keras_swiftformer.optional import require

LABELS = {
    "torch-eager": "PyTorch eager (official model)",
    "torch-compile": "torch.compile (official model)",
    "ort-torch-export": "ONNX Runtime on torch.onnx.export",
    "keras-tensorflow": "Keras, TensorFlow (tf.function)",
    "keras-tensorflow-xla": "Keras, TensorFlow + XLA",
    "keras-jax": "Keras, JAX (jit)",
    "keras-torch": "Keras, PyTorch backend",
    "tflite-float32": "our TFLite float32 (LiteRT, XNNPACK)",
    "tflite-int8": "our TFLite full int8 (LiteRT, XNNPACK)",
    "onnx-ours": "our ONNX (ONNX Runtime)",
    "torch-eager-mhsa": "same network, self-attention (PyTorch eager)",
}
KERAS = ("keras-tensorflow", "keras-tensorflow-xla", "keras-jax", "keras-torch")


def _index(rows):
    return {(r["runtime"], r["variant"], r["batch"], r["size"]): r for r in rows if "median_ms" in r}


def target_ratios(report):
    """The issue's four targets, as ratios from this run (None where a runtime is missing)."""
    settings = report["settings"]
    index = _index(report["results"])
    size = settings["size"]

    def ms(runtime, variant="L1", batch=1, at=size, table=index):
        row = table.get((runtime, variant, batch, at))
        return row["median_ms"] if row else None

    def ratio(a, b):
        return a / b if a and b else None

    keras = {r: ms(r) for r in KERAS if ms(r)}
    best = min(keras, key=keras.get) if keras else None
    sweep = _index(report["sweep"])
    variant = settings["sweep_variant"]
    scaling = {}
    if 896 in settings["sweep_sizes"] and 224 in settings["sweep_sizes"]:
        for runtime in sorted({r["runtime"] for r in report["sweep"]}):
            high, low = ms(runtime, variant, 1, 896, sweep), ms(runtime, variant, 1, 224, sweep)
            scaling[runtime] = ratio(high, low)
    return {
        "best_keras_runtime_L1_batch1": best,
        "best_keras_over_torch_eager": ratio(keras.get(best), ms("torch-eager")),
        "best_keras_over_torch_compile": ratio(keras.get(best), ms("torch-compile")),
        "tflite_float32_over_ort_torch_export": ratio(ms("tflite-float32"), ms("ort-torch-export")),
        "onnx_ours_over_ort_torch_export": ratio(ms("onnx-ours"), ms("ort-torch-export")),
        "tflite_int8_over_tflite_float32": ratio(ms("tflite-int8"), ms("tflite-float32")),
        "latency_896_over_224": scaling,
        "token_ratio_896_over_224": (896 / 224) ** 2,
    }


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report):
    settings, machine = report["settings"], report["machine"]
    index = _index(report["results"])
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        f"Measured {machine['date']} on {machine['cpu']}, {settings['threads']} threads "
        f"(each runtime pinned to the same cores), Python {machine['python']}; {versions}.",
        f"Input {settings['size']}x{settings['size']}, float32 unless the runtime says int8; median "
        "of repeated runs after warm-up, with the interquartile range; ratio = runtime / PyTorch "
        "eager on the official model at the same batch (lower is faster). Exported files run at "
        "batch 1, the way they are deployed; torch.compile runs at the batch sizes given by "
        "--compile-batch-sizes (default 1: each compilation takes about a minute here). Random "
        "weights (speed does not depend on them).",
        "",
    ]
    gmacs = {m["variant"]: m["gmacs"] for m in report["macs"] if m["attention"] == "additive" and m["size"] == settings["size"]}
    lines.append("| variant | GMACs | batch | runtime | latency (ms) | IQR (ms) | images/s | vs eager | peak RSS (MB) |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    runtimes = [r for r in LABELS if any(k[0] == r for k in index)]
    for variant in settings["variants"]:
        for batch in settings["batch_sizes"]:
            eager = index.get(("torch-eager", variant, batch, settings["size"]))
            for runtime in runtimes:
                row = index.get((runtime, variant, batch, settings["size"]))
                if not row:
                    continue
                ratio = row["median_ms"] / eager["median_ms"] if eager else None
                lines.append(
                    f"| {variant} | {_fmt(gmacs.get(variant))} | {batch} | {LABELS[runtime]} | {row['median_ms']:.1f} | "
                    f"{row['p25_ms']:.1f}-{row['p75_ms']:.1f} | {1000 * batch / row['median_ms']:.1f} | "
                    f"{_fmt(ratio)} | {_fmt(row.get('peak_rss_mb'), 0)} |"
                )
    errors = [r for r in report["results"] + report["sweep"] if "error" in r]
    for row in errors:
        lines.append(f"\n{row['runtime']} failed: `{row['error'].strip().splitlines()[-1] if row['error'].strip() else '?'}`")
    if report["sweep"]:
        sweep = _index(report["sweep"])
        sizes = report["settings"]["sweep_sizes"]
        variant = report["settings"]["sweep_variant"]
        macs = {(m["attention"], m["size"]): m["gmacs"] for m in report["macs"]}
        lines += ["", f"Resolution sweep, SwiftFormer-{variant}, batch 1 (latency in ms; tokens grow with the square of the side):", ""]
        lines.append("| runtime | " + " | ".join(str(s) for s in sizes) + " |")
        lines.append("|---|" + "---|" * len(sizes))
        for runtime in sorted({r["runtime"] for r in report["sweep"]}, key=list(LABELS).index):
            cells = []
            for size in sizes:
                row = sweep.get((runtime, variant, 1, size))
                cells.append(f"{row['median_ms']:.0f}" if row else "-")
            lines.append(f"| {LABELS[runtime]} | " + " | ".join(cells) + " |")
        lines.append("| GMACs, additive attention | " + " | ".join(_fmt(macs.get(("additive", s)), 1) for s in sizes) + " |")
        lines.append("| GMACs, self-attention | " + " | ".join(_fmt(macs.get(("mhsa", s)), 1) for s in sizes) + " |")
    ratios = target_ratios(report)
    lines += ["", "Targets (ratios from this run):", ""]
    if ratios["best_keras_runtime_L1_batch1"] is None:
        lines.append("* The targets are stated for L1 at batch 1, which this run did not measure "
                     "(run with --models including L1 and --batch-sizes including 1).")
        lines.append(f"\nWhole run: {report['wall_s'] / 60:.1f} min.")
        return "\n".join(lines) + "\n"
    lines.append(f"* best Keras backend for L1 at batch 1 ({ratios['best_keras_runtime_L1_batch1']}): "
                 f"{_fmt(ratios['best_keras_over_torch_eager'])}x PyTorch eager, "
                 f"{_fmt(ratios['best_keras_over_torch_compile'])}x torch.compile (targets: <= 0.8x, <= 1.0x)")
    lines.append(f"* our TFLite float32 / ORT on the torch export: {_fmt(ratios['tflite_float32_over_ort_torch_export'])}x; "
                 f"our ONNX / ORT on the torch export: {_fmt(ratios['onnx_ours_over_ort_torch_export'])}x (target: <= 1.0x)")
    lines.append(f"* TFLite int8 / float32: {_fmt(ratios['tflite_int8_over_tflite_float32'])}x (target: <= 0.5x)")
    if ratios["latency_896_over_224"]:
        token = ratios["token_ratio_896_over_224"]
        scaled = ", ".join(f"{LABELS[r]} {_fmt(v, 1)}x" for r, v in ratios["latency_896_over_224"].items())
        lines.append(f"* latency at 896 over 224 (tokens: {token:.0f}x; target for SwiftFormer <= {1.25 * token:.0f}x): {scaled}")
    lines.append(f"\nWhole run: {report['wall_s'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def plots(report, directory):
    matplotlib = require("matplotlib", "the benchmark plots")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "the benchmark plots")

    paths = {}
    index = _index(report["results"])
    settings = report["settings"]
    runtimes = [r for r in LABELS if any(k[0] == r and k[2] == 1 for k in index)]
    if runtimes:
        figure, axis = plt.subplots(figsize=(11, 4.5))
        width = 0.8 / len(runtimes)
        for i, runtime in enumerate(runtimes):
            values = [index.get((runtime, v, 1, settings["size"]), {}).get("median_ms", 0) for v in settings["variants"]]
            axis.bar([x + i * width for x in range(len(settings["variants"]))], values, width, label=LABELS[runtime])
        axis.set_xticks([x + 0.4 - width / 2 for x in range(len(settings["variants"]))], settings["variants"])
        axis.set_ylabel("latency, batch 1 (ms)")
        axis.set_title(f"SwiftFormer at {settings['size']}x{settings['size']}, {settings['threads']} CPU threads")
        axis.legend(fontsize=7, ncol=2)
        figure.tight_layout()
        paths["latency_plot"] = os.path.join(directory, "latency.png")
        with atomic_path(paths["latency_plot"]) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
        plt.close(figure)
    if report["sweep"]:
        sweep = _index(report["sweep"])
        figure, axis = plt.subplots(figsize=(7, 5))
        variant = settings["sweep_variant"]
        for runtime in sorted({r["runtime"] for r in report["sweep"]}, key=list(LABELS).index):
            points = sorted((size, sweep[(runtime, variant, 1, size)]["median_ms"]) for size in settings["sweep_sizes"]
                            if (runtime, variant, 1, size) in sweep)
            if points:
                axis.plot(*zip(*points), marker="o", label=LABELS[runtime])
        low = min(settings["sweep_sizes"])
        base = sweep.get(("torch-eager", variant, 1, low))
        if base:
            sizes = sorted(settings["sweep_sizes"])
            axis.plot(sizes, [base["median_ms"] * (s / low) ** 2 for s in sizes], "k:", label="linear in tokens")
            axis.plot(sizes, [base["median_ms"] * (s / low) ** 4 for s in sizes], "k--", label="quadratic in tokens")
        axis.set_xscale("log"), axis.set_yscale("log")
        axis.set_xlabel("input side (pixels)"), axis.set_ylabel("latency, batch 1 (ms)")
        axis.set_title(f"SwiftFormer-{variant}: additive attention vs self-attention")
        axis.legend(fontsize=7)
        figure.tight_layout()
        paths["resolution_plot"] = os.path.join(directory, "resolution.png")
        with atomic_path(paths["resolution_plot"]) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
        plt.close(figure)
    return paths


def write_report(report, directory):
    os.makedirs(directory, exist_ok=True)
    report = {**report, "targets": target_ratios(report)}
    paths = {"json": os.path.join(directory, "results.json"), "markdown": os.path.join(directory, "results.md")}
    write_text(paths["json"], json.dumps(report, indent=1))
    write_text(paths["markdown"], markdown(report))
    paths.update(plots(report, directory))
    return paths
