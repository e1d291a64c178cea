"""Command line: `python -m conversion convert SRC -o OUT.weights.h5 [--variant L1]`."""

import argparse
import os
import sys


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m conversion", description="Convert SwiftFormer weights."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert",
        help="PyTorch checkpoint (official .pth, transformers .safetensors/.bin) -> .weights.h5",
    )
    convert.add_argument("source", help="checkpoint file or transformers model folder")
    convert.add_argument("-o", "--output", required=True, help="output .weights.h5 path")
    convert.add_argument("--variant", help="XS, S, L1 or L3 (default: inferred from shapes)")
    convert.add_argument(
        "--attention-pooling",
        choices=["normalize", "softmax_v1"],
        help="normalize: current official release; softmax_v1: first release and Hugging Face "
        "Hub checkpoints (default: inferred from the checkpoint's layout)",
    )
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    from conversion.checkpoint import CheckpointError
    from conversion.convert import convert_checkpoint
    from keras_swiftformer.optional import MissingDependencyError

    try:
        model = convert_checkpoint(
            args.source,
            output=args.output,
            variant=args.variant,
            attention_pooling=args.attention_pooling,
        )
    except (CheckpointError, MissingDependencyError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"Wrote {os.path.abspath(args.output)}: {model.name}, "
        f"{model.count_params():,} parameters."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
