"""Build a SwiftFormer, optionally load an official checkpoint, and classify a photograph.

    python examples/quickstart.py                                   # random weights
    python examples/quickstart.py --weights SwiftFormer_L1.pth      # an official checkpoint
    python examples/quickstart.py --weights MBZUAI-swiftformer-l1/  # a Hub model folder
    python examples/quickstart.py --weights ckpt.pth --image my_photo.jpg

The variant is read from a weights file (--model for random or downloaded weights). Any
Keras backend: set KERAS_BACKEND=tensorflow|jax|torch.
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_swiftformer
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.models.swiftformer import build_with_record
from keras_swiftformer.variants import architecture, find_variant

PHOTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chelsea.jpg")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--model", choices=list(keras_swiftformer.VARIANTS),
                        help="default: the checkpoint's, else L1")
    parser.add_argument("--weights", help="official .pth, transformers file/folder, .weights.h5 or .keras "
                        "file, imagenet or imagenet_v1 (none given: random weights)")
    parser.add_argument("--attention-pooling", choices=["normalize", "softmax_v1"])
    parser.add_argument("--image", default=PHOTO, help="default: examples/chelsea.jpg (a tabby cat)")
    args = parser.parse_args()

    start = time.time()
    try:  # the variant is read from a weights file, which is read once
        model, class_names, trained_size = build_with_record(
            args.model, args.weights or "none", attention_pooling=args.attention_pooling)
    except (ValueError, OSError) as error:  # not a checkpoint, damaged, another variant: one line
        parser.exit(1, f"error: {error}\n")
    print(f"Built {model.name} on the {keras.backend.backend()} backend in {time.time() - start:.1f}s")
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    classes = model.output.shape[-1]
    shape = architecture(model)
    variant = find_variant(shape["depths"], shape["widths"])
    paper = keras_swiftformer.VARIANTS[variant]["paper"]["params_m"] if variant else None
    if paper and classes == 1000:
        print(f"  {trainable / 1e6:.2f}M trainable parameters (paper: {paper}M)")
    else:  # the paper counts a 1000-class head
        print(f"  {trainable / 1e6:.2f}M trainable parameters ({classes} classes)")

    size = trained_size or 224  # fine-tuned weights record their side
    images = keras_swiftformer.load_image(args.image, size)[None]  # the official evaluation transform
    for size, stage in zip((4, 8, 16, 32), keras_swiftformer.stage_feature_model(model)(images)):
        print(f"  stage at stride {size:2d}: {tuple(stage.shape)}")
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    print(f"  {os.path.basename(args.image)}, top 5:")
    # Fine-tuned weights record their class names; else ImageNet's (1000 classes).
    names = class_names or (None if classes == 1000 else [f"class {i}" for i in range(classes)])
    for _, name, score in keras_swiftformer.decode_predictions(probabilities, top=min(5, classes), class_names=names)[0]:
        print(f"    {score:7.2%}  {name}")
    if args.weights is None:
        print("  (random weights: pass --weights to load real ones)")


if __name__ == "__main__":
    main()
