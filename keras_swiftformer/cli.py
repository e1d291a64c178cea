"""The `swiftformer` command (also `python -m keras_swiftformer`):

    swiftformer predict IMAGE... [--model L1] [--weights imagenet] [--top 5]
    swiftformer convert SRC -o OUT.weights.h5 [--model L1] [--attention-pooling ...]
    swiftformer explain IMAGE [--model L1] [--weights imagenet] [--class NAME] [-o out.png]
    swiftformer export --model L1 --weights imagenet --format tflite --quantize int8 \\
        --calibration DIR -o l1_int8.tflite [--edgetpu]
"""

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

import keras
import numpy as np
from absl import logging as absl_logging

from keras_swiftformer.convert import convert_checkpoint
from keras_swiftformer.explain import explain_command
from keras_swiftformer.export import (
    DEFAULT_CALIBRATION_IMAGES,
    ExportError,
    calibration_array,
    export_input_size,
    export_onnx,
    export_tflite,
    format_report,
    verify,
)
from keras_swiftformer.models.inference import inference_model
from keras_swiftformer.models.swiftformer import build_with_record
from keras_swiftformer.optional import MissingDependencyError
from keras_swiftformer.preprocessing import decode_predictions, load_image, preprocess_input
from keras_swiftformer.variants import get_variant
from keras_swiftformer.weights import CheckpointError, WeightsDownloadError

# What a command reports as "error: ..." with exit code 1 instead of a traceback.
USER_ERRORS = (
    ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
    MissingDependencyError, WeightsDownloadError, CheckpointError, ExportError,
)
WEIGHTS_HELP = (
    "imagenet (current official release), imagenet_v1 (first release, Hugging Face Hub), a "
    ".weights.h5/.keras/.pth/.safetensors/.bin path, or none (random weights)"
)

MODEL_HELP = "XS, S, L1 or L3 (default: the variant a --weights file holds, else L1)"


def variant_name(text):
    """An argparse type for --model: an unknown variant is a usage error naming the flag."""
    try:
        return get_variant(text)[0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown variant {text!r}: choose XS, S, L1 or L3") from None


def positive_int(text):
    """An argparse type: a usage error (exit code 2) that names the flag, not a traceback."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def configure_logging(verbose):
    """A command's terminal shows its own output, not the libraries' logs, unless --verbose:
    absl and TensorFlow's Python loggers at ERROR, and TensorFlow's C++ logs at ERROR in the
    processes the command starts (export workers). The lines TensorFlow's C++ side prints while
    it is imported come before any command can run; `native_logs_held` takes care of the rest."""
    if verbose:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # The frameworks' own warnings (TensorFlow's converter, Keras' "shuffle=True ... ignored");
    # the library's (skipped images, scaled schedules) are still shown.
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf2onnx|onnxruntime)(\.|$)")
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# What TensorFlow's C++ side prints whenever it starts, on any machine without a GPU: noise
# above an error message.
_STARTUP_BANNER = re.compile(
    rb"cudart_stub|cpu_feature_guard|To enable the following instructions|before absl::InitializeLog|"
    rb"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"
)


@contextlib.contextmanager
def native_logs_held(verbose):
    """Holds back what native code (TensorFlow's converter, LiteRT, ONNX Runtime) writes to
    file descriptor 2 while a command works, and shows it only if the command fails: their C++
    log levels are fixed when they are imported, so an in-process setting cannot quiet them.
    Python's own `sys.stderr` (the library's warnings, such as skipped images) still reaches
    the terminal."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    try:
        on_fd_2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        on_fd_2 = False  # already redirected in Python (a test's capture): leave it be
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        if on_fd_2:
            sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, encoding=python_stderr.encoding,
                                   errors=python_stderr.errors)
        try:
            yield
        except Exception:  # a failure shows what was held (but the start-up banners); Ctrl-C does not
            sys.stderr.flush()
            held.seek(0)
            lines = held.read().splitlines(keepends=True)
            os.write(terminal, b"".join(line for line in lines if not _STARTUP_BANNER.search(line))[-20000:])
            raise
        finally:
            sys.stderr.flush()
            if on_fd_2:
                sys.stderr.close()
                sys.stderr = python_stderr
            os.dup2(terminal, 2)
            os.close(terminal)


def add_verbose(parser):
    parser.add_argument("-v", "--verbose", action="store_true", help="show the libraries' logs and warnings")


def _parser(prog):
    parser = argparse.ArgumentParser(prog=prog, description="SwiftFormer for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = {"formatter_class": HelpFormatter}

    predict = commands.add_parser("predict", help="classify images with an ImageNet-1k or fine-tuned model", **defaults)
    predict.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    add_verbose(predict)
    predict.add_argument("--model", type=variant_name, help=MODEL_HELP)
    predict.add_argument("--weights", default="imagenet", help=WEIGHTS_HELP)
    predict.add_argument("--top", type=positive_int, default=5, help="classes to print per image")
    predict.add_argument("--image-size", type=positive_int,
                         help="side the images are cropped to (default: the side fine-tuned weights "
                         "were trained at, else 224)")

    convert = commands.add_parser(
        "convert",
        help="PyTorch checkpoint (official .pth, transformers .safetensors/.bin) -> .weights.h5",
        **defaults,
    )
    convert.add_argument("source", help="checkpoint file or transformers model folder")
    add_verbose(convert)
    convert.add_argument("-o", "--output", required=True, help="output .weights.h5 path")
    convert.add_argument("--model", type=variant_name, help="XS, S, L1 or L3 (default: inferred from the checkpoint's shapes)")
    convert.add_argument(
        "--attention-pooling",
        choices=["normalize", "softmax_v1"],
        help="normalize: current official release; softmax_v1: first release and Hugging Face "
        "Hub checkpoints (default: inferred from the checkpoint's layout)",
    )

    explain = commands.add_parser(
        "explain", help="draw what a model looks at: attention maps and Grad-CAM", **defaults
    )
    explain.add_argument("image", help="image file (JPEG, PNG, ...)")
    add_verbose(explain)
    explain.add_argument("--model", type=variant_name, help=MODEL_HELP)
    explain.add_argument("--weights", default="imagenet", help=WEIGHTS_HELP)
    explain.add_argument("--class", dest="class_name",
                         help="class to explain: a name, an ImageNet WordNet id or an index (default: the predicted one)")
    explain.add_argument("-o", "--output", default="explanation.png", help="the PNG to write")
    explain.add_argument("--image-size", type=positive_int,
                         help="side the image is cropped to (default: the side fine-tuned weights were "
                         "trained at, else 224)")

    export = commands.add_parser("export", help="Keras SwiftFormer -> TFLite or ONNX, verified", **defaults)
    export.add_argument("--model", type=variant_name, help=MODEL_HELP)
    export.add_argument("--weights", default="imagenet", help=WEIGHTS_HELP)
    export.add_argument("--format", choices=["tflite", "onnx"],
                        help="file format (default: from the -o suffix, .tflite or .onnx)")
    export.add_argument("--quantize", choices=["float32", "float16", "dynamic", "int8"], default="float32",
                        help="TFLite weights and activations (int8: full integer, needs --calibration)")
    export.add_argument("--calibration", help="folder of images or tfds dataset name (int8)")
    export.add_argument("--num-calibration", type=positive_int, default=200, help="calibration images to use")
    export.add_argument("--edgetpu", action="store_true", help="Edge TPU-compatible full-int8 graph")
    export.add_argument("--include-preprocessing", action=argparse.BooleanOptionalAction, default=None,
                        help="fold the ImageNet normalisation in, so the file takes RGB pixels in [0, 255] "
                        "(TFLite default; --no-include-preprocessing: ImageNet-normalised inputs)")
    export.add_argument("--io-dtype", choices=["int8", "uint8", "float32"],
                        help="input/output type of a full-int8 file (default: uint8)")
    export.add_argument("--logits", action="store_true",
                        help="TFLite classifiers: output raw logits instead of ending in a softmax")
    export.add_argument("--image-size", type=positive_int,
                        help="side of the file's fixed input (default: the side fine-tuned weights "
                        "were trained at, else 224)")
    export.add_argument("--dynamic-axes", action="store_true", help="ONNX: free batch and size")
    export.add_argument("-o", "--output", required=True, help="the .tflite or .onnx file to write")
    add_verbose(export)
    for command_parser in commands.choices.values():  # usage errors show the command's usage
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def _class_names(names, classes, weights):
    """The names to print: the recorded ones, else ImageNet's for 1000 classes (None:
    decode_predictions names them)."""
    if names:
        return names
    if classes == 1000:
        return None  # decode_predictions names them
    raise ValueError(
        f"These weights have {classes} classes but record no class names (only fine-tuned "
        "weights written by `python -m training.finetune` do). Pass ImageNet weights or such a "
        f"file. Received: --weights {weights}"
    )


def _load_images(paths, size):
    """The readable images of `paths` (path -> pixels) and, for the others, why not: one
    corrupt file in a folder's glob does not cost the classification of the rest."""
    images, unreadable = {}, {}
    for path in dict.fromkeys(paths):
        try:
            images[path] = load_image(path, size)
        except ValueError as error:
            unreadable[path] = str(error)
    return images, unreadable


def near_uniform(top_score, classes):
    """Whether a model's mean top probability is that of a random or barely trained model
    (below 0.05 of 1000 classes, 0.5 of 4), where int8's 1/256 steps decide the top class."""
    return top_score < min(0.5, max(0.05, 2 / classes))


def _warn_if_random(weights, consequence):
    if weights.lower() == "none":
        print(f"warning: --weights none builds the model with random weights: {consequence}", file=sys.stderr)


def predict(args):
    folders = [path for path in args.images if os.path.isdir(path)]
    if folders:
        raise ValueError(f"{', '.join(folders)}: a folder; pass image files (for example {folders[0]}/*.jpg)")
    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"Image(s) not found: {', '.join(missing)}")
    model, recorded, trained_size = build_with_record(args.model, args.weights)  # --model: checked
    size = args.image_size or trained_size or 224
    if trained_size and size < trained_size:
        print(f"warning: --image-size {size} is smaller than the {trained_size}x{trained_size} these weights "
              "were trained at; accuracy usually drops at a side the model was not trained at.", file=sys.stderr)
    loaded, unreadable = _load_images(args.images, size)
    if not loaded:
        raise ValueError("No image could be read:\n" + "\n".join(f"  {message}" for message in unreadable.values()))
    paths = [path for path in args.images if path in loaded]
    images = np.stack([loaded[path] for path in paths])
    names = _class_names(recorded, int(model.output.shape[-1]), args.weights)
    # The inference form: the same logits with BatchNorm, layer scales and heads folded in.
    logits = keras.ops.convert_to_numpy(inference_model(model).predict(images, verbose=0))
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    tops = decode_predictions(probabilities, top=min(args.top, probabilities.shape[-1]), class_names=names)
    _warn_if_random(args.weights, "its classes are noise. Pass --weights imagenet or a trained file to classify.")
    for path, top in zip(paths, tops):
        print(f"{path}:")
        for wnid, name, score in top:
            print(f"  {score:7.2%}  {name}" + (f" ({wnid})" if isinstance(wnid, str) else ""))
    for message in unreadable.values():
        print(f"error: {message}", file=sys.stderr)
    if unreadable:
        print(f"Classified {len(loaded)} of {len(loaded) + len(unreadable)} images; "
              f"{len(unreadable)} could not be read (above).", file=sys.stderr)
    return 1 if unreadable else 0


def convert(args):
    model = convert_checkpoint(
        args.source, output=args.output, variant=args.model,
        attention_pooling=args.attention_pooling,
    )
    print(f"Wrote {os.path.abspath(args.output)}: {model.name}, {model.count_params():,} parameters.")
    return 0


def export(args):
    model, recorded, trained_size = build_with_record(args.model, args.weights)
    _warn_if_random(args.weights, "the file is for testing the deployment, not for use. Pass "
                    "--weights imagenet or a trained file for a model that classifies.")
    size = export_input_size(model, args.image_size or trained_size)
    if args.format == "onnx":
        result = export_onnx(model, args.output, input_size=size, dynamic_axes=args.dynamic_axes)
        print(f"Wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, opset {result['opset']}).")
    else:
        result = export_tflite(
            model, args.output, quantization=args.quantize, representative_data=args.calibration,
            input_size=size, edgetpu=args.edgetpu,
            include_preprocessing=args.include_preprocessing, io_dtype=args.io_dtype,
            num_calibration=args.num_calibration,
            class_names=recorded, probabilities=not args.logits,
        )
        labels = os.path.splitext(result["path"])[0] + ".labels.txt"
        extra = f", {labels}" if os.path.exists(labels) else ""
        print(f"Wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB), {result['sidecar']}{extra}.")
        print(format_report(result["ops"], integer=args.quantize == "int8"))
        compiled = result.get("edgetpu_compiler")
        if args.edgetpu and compiled is None:
            print("edgetpu_compiler is not on PATH: the file was checked against the Edge TPU "
                  "operator table only (see the README to compile it).")
        elif compiled is not None:
            print(f"edgetpu_compiler (exit {compiled['returncode']}): {compiled['ops_on_edgetpu']} "
                  f"operations on the Edge TPU, {compiled['ops_on_cpu']} on the CPU.")
    # Verification on real pixels where a calibration folder is at hand, else random ones.
    if args.calibration and os.path.isdir(args.calibration):
        pixels = calibration_array(args.calibration, 16, size, include_preprocessing=True, verbose=False)
    else:
        pixels = np.random.RandomState(0).uniform(0, 255, (8, size, size, 3)).astype("float32")
    folded = bool(result.get("include_preprocessing"))
    report = verify(args.output, model, pixels if folded else preprocess_input(pixels))
    compared = "probabilities vs Keras' softmax" if report["probabilities"] else "outputs"
    print(
        f"Verification against Keras on {len(pixels)} images ({compared}): max |diff| {report['max_abs_diff']:.3g}, "
        f"cosine {report['cosine']:.5f}, top-1 agreement {report['top1_agreement']:.1%}, "
        f"latency {report['latency_ms']:.1f} ms (Keras {report['keras_latency_ms']:.1f} ms)"
    )
    if args.quantize == "int8" and (report["cosine"] < 0.9 or report["top1_agreement"] < 0.9):
        classes = int(model.output.shape[-1])
        if report["probabilities"] and near_uniform(report["keras_top_score"], classes):
            print(
                f"Note: the int8 file's probabilities move in steps of 1/256; these weights give near-uniform "
                f"probabilities (about 1/{classes} each: untrained, barely trained or random weights), "
                "whose differences are below that step, hence the low agreement. A trained model's top "
                "classes are well apart; `--logits` exports the raw scores, to compare with Keras' logits."
            )
        elif not (args.calibration and os.path.isdir(args.calibration)):
            print("Note: verified on random pixels, on which int8 and float models often disagree; pass "
                  "--calibration with a folder of your images to verify on them.")
        else:
            print(
                f"Note: the int8 file's top class differs from Keras' on {1 - report['top1_agreement']:.0%} of "
                f"{len(pixels)} of your images. Calibrate on more of them ({DEFAULT_CALIBRATION_IMAGES} by "
                "default: --num-calibration, a folder that holds as many)."
            )
    return 0


def explain(args):
    explain_command(args.image, model=args.model, weights=args.weights, class_name=args.class_name,
                    output=args.output, image_size=args.image_size)
    return 0


COMMANDS = {"predict": predict, "convert": convert, "explain": explain, "export": export}


def _check_combinations(parser, args):
    """Options that cannot go together are a usage error (exit code 2) naming the flags."""
    if args.command in ("convert", "explain", "export") and os.path.isdir(args.output):
        parser.error(f"-o {args.output} is a folder: pass the path of the file to write")
    if args.command == "convert" and not args.output.endswith(".weights.h5"):
        parser.error(f"-o {args.output}: converted weights are Keras .weights.h5 files; end the name with .weights.h5")
    if args.command != "export":
        return
    suffix = os.path.splitext(args.output)[1].lower()
    if args.format is None:
        if suffix not in (".tflite", ".onnx"):
            parser.error(f"-o {args.output}: end the name with .tflite or .onnx (or pass --format)")
        args.format = suffix[1:]
    elif suffix != f".{args.format}":
        parser.error(f"-o {args.output} does not end in .{args.format}, the --format asked for")
    if args.format == "onnx" and args.quantize != "float32":
        parser.error(
            f"--quantize {args.quantize} applies to --format tflite only: ONNX files are written in "
            "float32. Use --format tflite --quantize int8 for an integer file."
        )
    if args.format == "onnx" and (args.edgetpu or args.io_dtype or args.include_preprocessing is not None or args.logits):
        parser.error("--edgetpu, --io-dtype, --include-preprocessing and --logits apply to --format tflite only "
                     "(ONNX files take ImageNet-normalised inputs and give logits).")
    if args.format == "tflite" and args.quantize == "int8" and not args.calibration:
        parser.error("--quantize int8 needs --calibration: a folder of your images or a tfds dataset name.")
    if args.format == "tflite" and args.dynamic_axes:
        parser.error("--dynamic-axes applies to --format onnx only: TFLite files have a fixed input.")


def main(argv=None, prog="swiftformer"):
    parser = _parser(prog)
    args = parser.parse_args(argv)
    _check_combinations(args.command_parser, args)
    configure_logging(args.verbose)
    try:
        with native_logs_held(args.verbose):
            return COMMANDS[args.command](args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
