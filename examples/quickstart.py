"""Build a SwiftFormer, optionally load an official checkpoint, and run it on an image.

    python examples/quickstart.py                                  # random weights
    python examples/quickstart.py --checkpoint SwiftFormer_L1.pth  # an official checkpoint
    python examples/quickstart.py --checkpoint MBZUAI-swiftformer-l1/  # a Hub model folder

Any Keras backend: set KERAS_BACKEND=tensorflow|jax|torch.
"""

import argparse
import time

import keras
import numpy as np

import keras_swiftformer

MEAN = np.array([0.485, 0.456, 0.406], "float32") * 255
STD = np.array([0.229, 0.224, 0.225], "float32") * 255


def sample_image(size=224):
    """A smooth synthetic RGB image (the package ships no photographs yet)."""
    y, x = np.mgrid[0:size, 0:size] / size
    return np.stack([x, y, 1 - x * y], axis=-1).astype("float32") * 255


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="L1", choices=list(keras_swiftformer.VARIANTS))
    parser.add_argument("--checkpoint", help="official .pth, transformers file/folder, or .weights.h5")
    parser.add_argument("--attention-pooling", choices=["normalize", "softmax_v1"])
    args = parser.parse_args()

    start = time.time()
    model = keras_swiftformer.build_variant(
        args.variant, weights=args.checkpoint, attention_pooling=args.attention_pooling
    )
    print(f"Built {model.name} on the {keras.backend.backend()} backend in {time.time() - start:.1f}s")
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    print(f"  {trainable / 1e6:.2f}M trainable parameters (paper: "
          f"{keras_swiftformer.VARIANTS[args.variant]['paper']['params_m']}M)")

    images = ((sample_image() - MEAN) / STD)[None]
    for size, stage in zip((4, 8, 16, 32), keras_swiftformer.stage_feature_model(model)(images)):
        print(f"  stage at stride {size:2d}: {tuple(stage.shape)}")
    logits = keras.ops.convert_to_numpy(model(images, training=False))[0]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    top = np.argsort(-probabilities)[:5]
    print("  top-5 class indices:", ", ".join(f"{i} ({probabilities[i]:.3f})" for i in top))
    if args.checkpoint is None:
        print("  (random weights: pass --checkpoint to load real ones)")


if __name__ == "__main__":
    main()
