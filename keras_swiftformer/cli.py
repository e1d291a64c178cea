"""`swiftformer predict IMAGE... --model L1 [--weights imagenet] [--top 5]`."""

import argparse
import os
import sys


def _parser():
    parser = argparse.ArgumentParser(prog="swiftformer", description="SwiftFormer for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify images with an ImageNet-1k model")
    predict.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    predict.add_argument("--model", default="L1", help="XS, S, L1 or L3 (default: L1)")
    predict.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (current official release, default), imagenet_v1 (first release, "
        "Hugging Face Hub), or a .weights.h5/.keras/.pth/.safetensors/.bin path",
    )
    predict.add_argument("--top", type=int, default=5, help="classes to print per image")
    predict.add_argument("--image-size", type=int, default=224)
    return parser


def predict(args):
    import keras
    import numpy as np

    import keras_swiftformer
    from keras_swiftformer.models.variants import get_variant
    from keras_swiftformer.preprocessing import decode_predictions, load_image

    variant, _ = get_variant(args.model)
    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"Image(s) not found: {', '.join(missing)}")
    images = np.stack([load_image(path, args.image_size) for path in args.images])
    model = getattr(keras_swiftformer, f"SwiftFormer{variant}")(weights=args.weights)
    if model.output.shape[-1] != 1000:
        raise ValueError(
            f"`predict` names ImageNet-1k classes, but these weights have "
            f"{model.output.shape[-1]} outputs."
        )
    logits = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    for path, top in zip(args.images, decode_predictions(probabilities, top=args.top)):
        print(f"{path}:")
        for wnid, name, score in top:
            print(f"  {score:7.2%}  {name} ({wnid})")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    from keras_swiftformer.optional import MissingDependencyError
    from keras_swiftformer.pretrained import WeightsDownloadError

    try:
        return predict(args)
    except (ValueError, FileNotFoundError, MissingDependencyError, WeightsDownloadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
