"""Segments a photograph with a trained SwiftFormer segmenter and saves a colour overlay.

    python -m training.segment --model L1 --dataset DIR --output runs/seg ...   # train first
    python examples/segment_photo.py photo.jpg --weights runs/seg/final.keras --output overlay.png

The image is resized with its aspect ratio kept to fit the model's input (or --image-size),
padded, segmented, and the prediction is cropped back, upsampled to the photograph and blended
onto it. Class names come from the `labels.txt` the recipe writes beside `final.keras`.
"""

import argparse
import json
import os

import numpy as np


def palette(count):
    """Distinct colours (the PASCAL VOC bit-interleaving palette), class 0 first."""
    colours = np.zeros((count, 3), np.uint8)
    for index in range(count):
        value, shift = index, 7
        while value:
            for channel in range(3):
                colours[index, channel] |= ((value >> channel) & 1) << shift
            value >>= 3
            shift -= 1
    return colours


def segment(model, photo, size):
    """Class index per pixel of `photo` (uint8 HxWx3) at the photograph's resolution."""
    import keras

    from keras_swiftformer.preprocessing import preprocess_input

    height, width = photo.shape[:2]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = keras.ops.convert_to_numpy(
        keras.ops.image.resize(photo[None].astype("float32"), (new_h, new_w), interpolation="bilinear")
    )
    canvas = np.zeros((1, size, size, 3), "float32")
    canvas[:, :new_h, :new_w] = preprocess_input(resized)
    logits = keras.ops.convert_to_numpy(model(canvas, training=False))[0, :new_h, :new_w]
    classes = logits.argmax(-1)
    rows = np.minimum((np.arange(height) * scale).astype(int), new_h - 1)
    cols = np.minimum((np.arange(width) * scale).astype(int), new_w - 1)
    return classes[rows][:, cols]


def overlay(photo, classes, alpha=0.5, background=0):
    colours = palette(int(classes.max()) + 1)[classes]
    blended = photo.astype("float32") * (1 - alpha) + colours * alpha
    keep = classes == background  # the photograph shows through where nothing was found
    blended[keep] = photo[keep]
    return blended.astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("image", help="the photograph to segment")
    parser.add_argument("--weights", required=True, help="a segmenter saved by training.segment (its final.keras)")
    parser.add_argument("-o", "--output", default="overlay.png", help="the PNG to write")
    parser.add_argument("--image-size", type=int, help="input side (default: the model's fixed input, else 512)")
    parser.add_argument("--labels", help="class names, one per line (default: labels.txt beside --weights)")
    parser.add_argument("--upscale", type=int, default=1, help="enlarge the saved PNG (small photos)")
    args = parser.parse_args()

    import keras
    from PIL import Image

    import keras_swiftformer  # noqa: F401 - registers the layers for loading

    if not os.path.exists(args.weights):
        parser.error(f"--weights {args.weights} not found: train a segmenter with `python -m training.segment` first")
    if not args.weights.endswith(".keras"):
        parser.error(f"--weights {args.weights}: pass the whole model, the final.keras that "
                     "`python -m training.segment` writes (a .weights.h5 holds no architecture)")
    if not os.path.isfile(args.image):
        parser.error(f"image {args.image} not found")
    model = keras.saving.load_model(args.weights, compile=False)
    if len(model.output_shape) != 4:
        parser.error(f"--weights {args.weights} is a model with outputs of shape {model.output_shape}, "
                     "not a segmenter's per-pixel classes: pass a final.keras from `python -m training.segment`")
    size = args.image_size or model.input_shape[1] or 512
    if size % 32:
        parser.error(f"--image-size must be a multiple of 32, got {size}")
    labels = args.labels or os.path.join(os.path.dirname(os.path.abspath(args.weights)), "labels.txt")
    names = None
    if os.path.exists(labels):
        with open(labels, encoding="utf-8") as file:
            names = [line.strip() for line in file if line.strip()]
    elif args.labels:
        parser.error(f"--labels {args.labels} not found")
    photo = np.asarray(Image.open(args.image).convert("RGB"))
    classes = segment(model, photo, size)
    picture = Image.fromarray(np.concatenate([photo, overlay(photo, classes)], axis=1))
    if args.upscale > 1:
        picture = picture.resize((picture.width * args.upscale, picture.height * args.upscale), Image.NEAREST)
    picture.save(args.output)
    counts = np.bincount(classes.ravel())
    name = (lambda i: names[i]) if names and len(names) == model.output_shape[-1] else str
    shares = {name(i): round(float(c) / classes.size, 4) for i, c in enumerate(counts) if c}
    print(json.dumps({"output": args.output, "pixel_share_per_class": shares}))


if __name__ == "__main__":
    main()
