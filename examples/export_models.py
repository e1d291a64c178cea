"""Export SwiftFormer-XS and -L1 in every TFLite flavour and print size, LiteRT latency and
fidelity against the Keras model.

    python examples/export_models.py [--weights imagenet] [--calibration DIR] [-o exports/]
    python examples/export_models.py --segmenter --models L1 --image-size 512   # Semantic FPN

Without --weights the models keep their random initialisation (fine for size and latency;
fidelity then compares near-random logits). Calibration defaults to scikit-image's sample
photographs when no folder is given.
"""

import argparse
import os
import tempfile

import numpy as np

import keras_swiftformer
from keras_swiftformer.export import calibration_array, export_tflite, verify
from keras_swiftformer.preprocessing import load_image

FLAVOURS = [
    ("float32", {}),
    ("float16", {"quantization": "float16"}),
    ("dynamic", {"quantization": "dynamic"}),
    ("int8", {"quantization": "int8"}),
    ("edgetpu", {"quantization": "int8", "edgetpu": True}),
]


def sample_photos(size=224):
    import skimage.data

    names = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "hubble_deep_field", "retina", "immunohistochemistry")
    return np.stack([load_image(getattr(skimage.data, n)(), image_size=size, normalize=False)
                     for n in names if hasattr(skimage.data, n)])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--models", default="XS,L1", help="comma-separated variants")
    parser.add_argument("--weights", default=None, help="imagenet, a path, or random weights when not given")
    parser.add_argument("--calibration", help="folder of images (default: scikit-image photos)")
    parser.add_argument("-o", "--output", default=None, help="folder for the files")
    parser.add_argument("--segmenter", action="store_true",
                        help="export the Semantic FPN segmenter (150 classes) instead of the classifier")
    parser.add_argument("--image-size", type=int, default=None, help="input side (224; 512 for --segmenter)")
    parser.add_argument("--flavours", default=None, help="comma-separated subset of " + ",".join(f for f, _ in FLAVOURS))
    args = parser.parse_args()
    out = args.output or tempfile.mkdtemp(prefix="swiftformer-exports-")
    size = args.image_size or (512 if args.segmenter else 224)
    # Pixels in [0, 255] to verify on: the calibration folder's first images, else the photos.
    if args.calibration is None:
        pixels = sample_photos(size)
    else:
        pixels = calibration_array(args.calibration, 16, size, include_preprocessing=True, verbose=False)
    flavours = [(f, o) for f, o in FLAVOURS if args.flavours is None or f in args.flavours.split(",")]
    rows = []
    for variant in args.models.split(","):
        if args.segmenter:
            model = keras_swiftformer.SwiftFormerSegmenter(variant, num_classes=150, backbone_weights=args.weights)
        else:
            model = keras_swiftformer.build_variant(variant, weights=args.weights)
        for flavour, options in flavours:
            options = {**options, "input_size": size}
            kind = "semantic_fpn" if args.segmenter else ""
            path = os.path.join(out, f"swiftformer_{variant.lower()}{kind and '_' + kind}_{flavour}.tflite")
            # The files take pixels in [0, 255] (normalisation folded in, the default).
            calibration = args.calibration or pixels
            result = export_tflite(model, path, representative_data=calibration, **options)
            report = verify(path, model, pixels, repeats=20)
            rows.append((variant, flavour, result["bytes"] / 1e6, report))
            print(f"{variant:3s} {flavour:8s} done", flush=True)
        del model
    agreement = "pixel agreement" if args.segmenter else "top-1 agreement"
    print(f"\n| variant | file | size (MB) | LiteRT latency, 2 threads (ms) | cosine vs Keras | {agreement} |")
    print("|---|---|---|---|---|---|")
    for variant, flavour, size, report in rows:
        print(f"| {variant} | {flavour} | {size:.1f} | {report['latency_ms']:.1f} | {report['cosine']:.5f} | {report['top1_agreement']:.1%} |")
    print(f"\nFiles in {out}; fidelity on {len(pixels)} photographs.")


if __name__ == "__main__":
    main()
