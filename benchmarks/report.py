"""The benchmark report: ratios within each round, their spread over rounds, Markdown, JSON
and two plots."""

import json
import os
import statistics

from keras_swiftformer.io import atomic_path, write_text
from keras_swiftformer.optional import require

LABELS = {
    "torch-eager": "PyTorch eager (official model)",
    "torch-eager-channels-last": "PyTorch eager, channels_last",
    "torch-compile": "torch.compile, freezing",
    "torch-compile-max-autotune": "torch.compile, freezing, max-autotune",
    "ort-torch-export": "ONNX Runtime on torch.onnx.export",
    "keras-tensorflow": "Keras, TensorFlow (tf.function)",
    "keras-tensorflow-xla": "Keras, TensorFlow + XLA",
    "keras-jax": "Keras, JAX (jit)",
    "keras-torch": "Keras, PyTorch backend",
    "keras-torch-compile": "Keras, PyTorch backend + torch.compile, freezing",
    "tflite-float32": "our TFLite float32 (LiteRT, XNNPACK)",
    "tflite-int8": "our TFLite full int8 (LiteRT, XNNPACK)",
    "onnx-ours": "our ONNX (ONNX Runtime)",
    "torch-eager-mhsa": "same network, self-attention (PyTorch eager)",
}
# Freezing is an inference transformation: the training step's torch.compile runs without it.
TRAINING_LABELS = {**LABELS, "torch-compile": "torch.compile"}
KERAS = ("keras-tensorflow", "keras-tensorflow-xla", "keras-jax", "keras-torch", "keras-torch-compile")
TORCH = ("torch-eager", "torch-eager-channels-last", "torch-compile", "torch-compile-max-autotune")
PEERS = TORCH + ("ort-torch-export",)


def _median(values):
    return statistics.median(values) if values else None


def per_round(rows):
    """{(runtime, variant, batch, size, threads): {round: median_ms}}"""
    table = {}
    for row in rows:
        if "median_ms" in row:
            key = (row["runtime"], row["variant"], row["batch"], row["size"], row.get("threads"))
            table.setdefault(key, {})[row.get("round", 0)] = row["median_ms"]
    return table


def ratio_over_rounds(table, ours, peers, where):
    """The ratio of `ours` to the fastest of `peers` within each round (None if missing):
    {"median", "low", "high", "rounds", "peer"}. `where` = (variant, batch, size, threads)."""
    mine = table.get((ours, *where), {})
    ratios, winners = [], []
    for round_index, ms in mine.items():
        candidates = {p: table[(p, *where)][round_index] for p in peers
                      if round_index in table.get((p, *where), {})}
        if candidates:
            best = min(candidates, key=candidates.get)
            ratios.append(ms / candidates[best])
            winners.append(best)
    if not ratios:
        return None
    return {"median": _median(ratios), "low": min(ratios), "high": max(ratios), "rounds": len(ratios),
            "peer": max(set(winners), key=winners.count)}


def _best_keras(table, where):
    medians = {r: _median(list(table[(r, *where)].values())) for r in KERAS if (r, *where) in table}
    return min(medians, key=medians.get) if medians else None


def target_ratios(report):
    """The issue's targets per variant (and batch), as ratios within rounds with their range."""
    settings = report["settings"]
    table = per_round(report["results"])
    size, threads = settings["size"], settings["threads"]
    targets = {"keras_vs_best_pytorch": [], "each_keras_vs_eager": [], "files_vs_ort": [], "int8_vs_float32": [],
               "training": [], "pipeline": None}
    for variant in settings["variants"]:
        for batch in settings["batch_sizes"]:
            where = (variant, batch, size, threads)
            best = _best_keras(table, where)
            if best:
                targets["keras_vs_best_pytorch"].append(
                    {"variant": variant, "batch": batch, "runtime": best, "limit": 1.0,
                     **(ratio_over_rounds(table, best, TORCH, where) or {})})
            worst = [(r, ratio_over_rounds(table, r, ("torch-eager",), where)) for r in KERAS]
            worst = [(r, v) for r, v in worst if v]
            if worst:
                runtime, value = max(worst, key=lambda item: item[1]["median"])
                targets["each_keras_vs_eager"].append({"variant": variant, "batch": batch, "runtime": runtime,
                                                       "limit": 1.0, **value})
        where = (variant, 1, size, threads)
        for ours, limit in (("tflite-float32", 0.8), ("onnx-ours", 0.9)):
            value = ratio_over_rounds(table, ours, ("ort-torch-export",), where)
            if value:
                targets["files_vs_ort"].append({"variant": variant, "batch": 1, "runtime": ours, "limit": limit, **value})
        value = ratio_over_rounds(table, "tflite-int8", ("tflite-float32",), where)
        if value:
            targets["int8_vs_float32"].append({"variant": variant, "batch": 1, "runtime": "tflite-int8",
                                               "limit": 0.5, **value})
    steps = {(r["runtime"], r["variant"]): r for r in report.get("training", []) if "median_ms" in r}
    for variant in sorted({v for _, v in steps}, key=lambda v: settings["variants"].index(v)
                          if v in settings["variants"] else 99):
        keras_steps = {r: steps[(r, variant)] for r in ("keras-tensorflow", "keras-jax", "keras-torch")
                       if (r, variant) in steps}
        eager = steps.get(("torch-eager", variant))
        if keras_steps and eager:
            best = min(keras_steps, key=lambda r: keras_steps[r]["median_ms"])
            ours = keras_steps[best]
            targets["training"].append({
                "variant": variant, "runtime": best, "limit": 1.0, "median": ours["median_ms"] / eager["median_ms"],
                "low": ours["p25_ms"] / eager["p75_ms"], "high": ours["p75_ms"] / eager["p25_ms"],
                "consumes_images_per_s": 1000 * ours["batch"] / ours["median_ms"],
            })
    pipelines = [r for r in report.get("training", []) if r.get("runtime") == "input-pipeline" and "images_per_s" in r]
    default = [r for r in pipelines if r.get("pipeline", "").startswith("default")]
    if default:
        targets["pipeline"] = {"images_per_s": default[0]["images_per_s"], "limit": 300}
    return targets


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _spread(value):
    if not value or "median" not in value:  # a subset run (--runtimes) without the peer
        return "-"
    return f"{value['median']:.2f} ({value['low']:.2f}-{value['high']:.2f})"


def _verdict(value):
    if value is None or "median" not in value:
        return "not measured"
    if value["high"] <= value["limit"]:
        return "met"
    return "met at the median, not in every round" if value["median"] <= value["limit"] else "**missed**"


def _phases(report):
    phases = report.get("phases_s")
    if not phases:
        return ""
    return " (" + ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in phases.items()) + ")"


def _int8_instructions(machine):
    found = machine.get("int8_dot_product")
    if found is None:
        return "int8 dot-product instructions not recorded"
    return ("int8 dot-product instructions: " + ", ".join(found) if found else
            "no int8 dot-product instructions: int8 runs no faster than float32 here")


def markdown(report):
    settings, machine = report["settings"], report["machine"]
    table = per_round(report["results"])
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    gmacs = {m["variant"]: m["gmacs"] for m in report["macs"] if m["attention"] == "additive" and m["size"] == settings["size"]}
    peaks = {s["threads"]: max(s["sgemm_gflops"].values()) for s in report.get("sgemm", [])}
    memory = {}
    for row in report["results"]:
        if "median_ms" in row:
            key = (row["runtime"], row["variant"], row["batch"], row["size"], row.get("threads"))
            memory.setdefault(key, (row.get("weights_mb"), row.get("activation_mb")))
    lines = [
        f"Measured {machine['date']} on {machine['cpu']}, {machine['cores_visible']} cores visible "
        f"({_int8_instructions(machine)}), Python {machine['python']}; {versions}.",
        "",
        f"Input {settings['size']}x{settings['size']}, float32 unless the runtime says int8, random weights (speed "
        f"does not depend on them). Every runtime runs in its own process pinned to {settings['threads']} cores "
        f"(rows marked 1 thread: pinned to one), and the whole set ran {settings['rounds']} times, interleaved. "
        "Latency: the median over rounds of each round's median, with the range over rounds. Ratios are taken "
        "within a round and given as the median over rounds (range); lower is faster. *vs best PyTorch*: the "
        "fastest of torch eager (NCHW or channels_last) and torch.compile in that round; *vs best peer*: the same "
        "or ONNX Runtime on the torch export. GFLOP/s counts 2 FLOPs per multiply-add of the official model; "
        + ", ".join(f"this machine's sgemm peak on {t} thread{'s' if t > 1 else ''}: {p:.0f} GFLOP/s"
                    for t, p in sorted(peaks.items()))
        + ". Memory: the weights as the runtime holds them, and how far one call's activations lift the "
        "resident set above its level before the timed runs (not the runtime's own footprint).",
        "",
        "| variant | batch | threads | runtime | latency (ms) | range (ms) | images/s | GFLOP/s | % of peak "
        "| vs eager | vs best PyTorch | vs best peer | weights (MB) | activations (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    runtimes = [r for r in LABELS if any(k[0] == r for k in table)]
    thread_counts = sorted({k[4] for k in table}, reverse=True)
    for threads in thread_counts:
        for variant in settings["variants"]:
            for batch in settings["batch_sizes"]:
                where = (variant, batch, settings["size"], threads)
                for runtime in runtimes:
                    rounds = table.get((runtime, *where))
                    if not rounds:
                        continue
                    ms = _median(list(rounds.values()))
                    flops = 2 * gmacs.get(variant, 0) * batch / (ms / 1000) if gmacs.get(variant) else None
                    share = 100 * flops / peaks[threads] if flops and threads in peaks and "int8" not in runtime else None
                    weights, activations = memory.get((runtime, *where), (None, None))
                    lines.append(
                        f"| {variant} | {batch} | {threads} | {LABELS[runtime]} | {ms:.1f} | "
                        f"{min(rounds.values()):.1f}-{max(rounds.values()):.1f} | {1000 * batch / ms:.1f} | "
                        f"{_fmt(flops, 0)} | {_fmt(share, 0)} | "
                        f"{_spread(ratio_over_rounds(table, runtime, ('torch-eager',), where))} | "
                        f"{_spread(ratio_over_rounds(table, runtime, TORCH, where))} | "
                        f"{_spread(ratio_over_rounds(table, runtime, PEERS, where))} | "
                        f"{_fmt(weights, 1)} | {_fmt(activations, 0)} |"
                    )
    errors = [r for r in report["results"] + report["sweep"] + report.get("training", []) if "error" in r]
    for row in errors:
        last = row["error"].strip().splitlines()[-1] if row["error"].strip() else "?"
        lines.append(f"\n{row['runtime']} ({row.get('threads', '?')} threads) failed: `{last}`")
    lines += _training_lines(report)
    lines += _sweep_lines(report)
    lines += _target_lines(report)
    lines.append(f"\nWhole run: {report['wall_s'] / 60:.1f} min{_phases(report)}.")
    return "\n".join(lines) + "\n"


def summary(report):
    """The README's view: latency per runtime (columns) for each variant and batch (rows),
    median over rounds with the range, then the training step, the pipeline and the targets.
    results.md has every row with its ratios, GFLOP/s and memory."""
    settings, machine = report["settings"], report["machine"]
    table = per_round(report["results"])
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [f"Measured {machine['date']} on {machine['cpu']} ({machine['cores_visible']} cores; "
             f"{_int8_instructions(machine)}), Python {machine['python']}; {versions}. {settings['rounds']} "
             f"interleaved rounds; whole run {report['wall_s'] / 60:.1f} min{_phases(report)}."]
    for threads in sorted({k[4] for k in table}, reverse=True):
        runtimes = [r for r in LABELS if any(k[0] == r and k[4] == threads for k in table)]
        lines += ["", f"Latency in ms, {threads} thread{'s' if threads > 1 else ''} (median over rounds, range "
                  "over rounds in brackets; exported files at batch 1):", "",
                  "| variant | batch | " + " | ".join(LABELS[r] for r in runtimes) + " |",
                  "|---|---|" + "---|" * len(runtimes)]
        for variant in settings["variants"]:
            for batch in settings["batch_sizes"]:
                cells = []
                for runtime in runtimes:
                    rounds = table.get((runtime, variant, batch, settings["size"], threads))
                    cells.append(f"{_median(list(rounds.values())):.1f} ({min(rounds.values()):.1f}-"
                                 f"{max(rounds.values()):.1f})" if rounds else "-")
                if any(c != "-" for c in cells):
                    lines.append(f"| {variant} | {batch} | " + " | ".join(cells) + " |")
    lines += _training_lines(report)
    lines += _target_lines(report)
    return "\n".join(lines) + "\n"


def _training_lines(report):
    steps = [r for r in report.get("training", []) if r.get("task") == "training" and "median_ms" in r]
    pipelines = [r for r in report.get("training", []) if r.get("runtime") == "input-pipeline" and "images_per_s" in r]
    lines = []
    if steps:
        batch = steps[0]["batch"]
        lines += ["", f"Training step at batch {batch}, {steps[0]['size']}x{steps[0]['size']} (forward, backward, AdamW "
                  "update; median of three timed steps after a warm-up step, with the interquartile range):", "",
                  "| variant | runtime | step (ms) | IQR (ms) | images/s | vs torch eager | vs torch.compile |",
                  "|---|---|---|---|---|---|---|"]
        index = {(r["runtime"], r["variant"]): r for r in steps}
        for row in steps:
            eager, compiled = index.get(("torch-eager", row["variant"])), index.get(("torch-compile", row["variant"]))
            lines.append(
                f"| {row['variant']} | {TRAINING_LABELS.get(row['runtime'], row['runtime'])} | {row['median_ms']:.0f} | "
                f"{row['p25_ms']:.0f}-{row['p75_ms']:.0f} | {1000 * batch / row['median_ms']:.1f} | "
                f"{_fmt(row['median_ms'] / eager['median_ms']) if eager else '-'} | "
                f"{_fmt(row['median_ms'] / compiled['median_ms']) if compiled else '-'} |"
            )
    if pipelines:
        lines += ["", "Training input pipeline (JPEG files on disk to augmented, batched tensors; tf.data on the same "
                  "cores):", "", "| pipeline | images/s |", "|---|---|"]
        for row in pipelines:
            lines.append(f"| {row['pipeline']} | {row['images_per_s']:.0f} |")
    return lines


def _sweep_lines(report):
    if not report["sweep"]:
        return []
    sweep = per_round(report["sweep"])
    sizes = report["settings"]["sweep_sizes"]
    variant = report["settings"]["sweep_variant"]
    macs = {(m["attention"], m["size"]): m["gmacs"] for m in report["macs"]}
    lines = ["", f"Resolution sweep, SwiftFormer-{variant}, batch 1 (latency in ms; tokens grow with the square of "
             "the side):", "", "| runtime | " + " | ".join(str(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for runtime in sorted({r["runtime"] for r in report["sweep"]}, key=list(LABELS).index):
        cells = []
        for size in sizes:
            rounds = [v for k, v in sweep.items() if k[0] == runtime and k[2] == 1 and k[3] == size]
            cells.append(f"{_median(list(rounds[0].values())):.0f}" if rounds else "-")
        lines.append(f"| {LABELS[runtime]} | " + " | ".join(cells) + " |")
    lines.append("| GMACs, additive attention | " + " | ".join(_fmt(macs.get(("additive", s)), 1) for s in sizes) + " |")
    lines.append("| GMACs, self-attention | " + " | ".join(_fmt(macs.get(("mhsa", s)), 1) for s in sizes) + " |")
    return lines


def _target_lines(report):
    targets = target_ratios(report)
    lines = ["", "Targets (ratio within a round, median over rounds and range; *met* means every round met it):", "",
             "| target | variant | batch | runtime | ratio | limit | verdict |", "|---|---|---|---|---|---|---|"]
    names = {"keras_vs_best_pytorch": "best Keras backend / best PyTorch runtime",
             "each_keras_vs_eager": "slowest Keras backend / torch eager",
             "files_vs_ort": "our file / ONNX Runtime on the torch export",
             "int8_vs_float32": "TFLite full int8 / float32"}
    for key, name in names.items():
        for value in targets[key]:
            lines.append(f"| {name} | {value['variant']} | {value['batch']} | {LABELS[value['runtime']]} | "
                         f"{_spread(value)} | {value['limit']} | {_verdict(value)} |")
    for value in targets["training"]:
        lines.append(f"| best Keras training step / torch eager step | {value['variant']} | "
                     f"{report['settings']['training_batch']} | {LABELS[value['runtime']]} | {_spread(value)} (IQR) | "
                     f"{value['limit']} | {_verdict(value)} |")
    pipeline = targets["pipeline"]
    if pipeline:
        met = "met" if pipeline["images_per_s"] >= pipeline["limit"] else "**missed**"
        lines.append(f"| default training input pipeline (images/s) | - | {report['settings']['training_batch']} | tf.data "
                     f"| {pipeline['images_per_s']:.0f} | >= {pipeline['limit']} | {met} |")
    return lines


def plots(report, directory):
    matplotlib = require("matplotlib", "the benchmark plots")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "the benchmark plots")

    paths = {}
    table = per_round(report["results"])
    settings = report["settings"]
    threads = settings["threads"]
    runtimes = [r for r in LABELS if any(k[0] == r and k[2] == 1 and k[4] == threads for k in table)]
    if runtimes:
        figure, axis = plt.subplots(figsize=(12, 4.8))
        width = 0.8 / len(runtimes)
        colours = plt.get_cmap("tab20").colors
        tallest = 0.0
        for i, runtime in enumerate(runtimes):
            medians, errors = [], [[], []]
            for variant in settings["variants"]:
                rounds = list(table.get((runtime, variant, 1, settings["size"], threads), {}).values())
                middle = _median(rounds) or 0
                medians.append(middle)
                errors[0].append(middle - min(rounds) if rounds else 0)
                errors[1].append(max(rounds) - middle if rounds else 0)
            tallest = max(tallest, *medians)
            axis.bar([x + i * width for x in range(len(settings["variants"]))], medians, width,
                     yerr=errors, capsize=2, label=LABELS[runtime], color=colours[i % len(colours)])
        # A single outlying round would flatten every bar: the axis ends above the medians.
        axis.set_ylim(0, 1.6 * tallest)
        axis.set_xticks([x + 0.4 - width / 2 for x in range(len(settings["variants"]))], settings["variants"])
        axis.set_ylabel("latency, batch 1 (ms); whiskers: range over rounds")
        axis.set_title(f"SwiftFormer at {settings['size']}x{settings['size']}, {threads} CPU threads")
        axis.legend(fontsize=7, ncol=3)
        figure.tight_layout()
        paths["latency_plot"] = os.path.join(directory, "latency.png")
        with atomic_path(paths["latency_plot"]) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
        plt.close(figure)
    if report["sweep"]:
        sweep = per_round(report["sweep"])
        figure, axis = plt.subplots(figsize=(7, 5))
        variant = settings["sweep_variant"]
        for runtime in sorted({r["runtime"] for r in report["sweep"]}, key=list(LABELS).index):
            points = sorted((k[3], _median(list(v.values()))) for k, v in sweep.items()
                            if k[0] == runtime and k[1] == variant)
            if points:
                axis.plot(*zip(*points), marker="o", label=LABELS[runtime])
        low = min(settings["sweep_sizes"])
        base = [v for k, v in sweep.items() if k[0] == "torch-eager" and k[3] == low]
        if base:
            base_ms = _median(list(base[0].values()))
            sizes = sorted(settings["sweep_sizes"])
            axis.plot(sizes, [base_ms * (s / low) ** 2 for s in sizes], "k:", label="linear in tokens")
            axis.plot(sizes, [base_ms * (s / low) ** 4 for s in sizes], "k--", label="quadratic in tokens")
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
    paths = {"json": os.path.join(directory, "results.json"), "markdown": os.path.join(directory, "results.md"),
             "summary": os.path.join(directory, "summary.md")}
    write_text(paths["json"], json.dumps(report, indent=1))
    write_text(paths["markdown"], markdown(report))
    write_text(paths["summary"], summary(report))
    paths.update(plots(report, directory))
    return paths
