"""Trains keras-hub's RetinaNet with a (pretrained) SwiftFormer encoder on a small detection set
and draws the boxes it finds.

    python examples/retinanet_shapes.py --model XS --weights imagenet --epochs 30 \\
        --output runs/retinanet

The set is made on the fly: disks and striped squares of random colours on crops of the
photographs scikit-image ships (examples/make_shapes_dataset.py), with exact boxes. Needs the
`detection` extra (keras-hub) and scikit-image. Writes `detections.png` (predicted boxes in
green, true boxes in white) and prints recall at IoU 0.5 on the held-out images.
"""

import argparse
import json
import os

import numpy as np
from make_shapes_dataset import CLASS_NAMES, _photos, make_example

MAX_BOXES = 4


def detection_set(count, size, seed):
    random = np.random.RandomState(seed)
    photos = _photos()
    images = np.zeros((count, size, size, 3), np.uint8)
    boxes = -np.ones((count, MAX_BOXES, 4), np.float32)
    labels = -np.ones((count, MAX_BOXES), np.int32)
    for index in range(count):
        image, _, shape_boxes, shape_labels = make_example(photos[random.randint(len(photos))], size, random, True)
        images[index] = image
        boxes[index, : len(shape_boxes)] = np.clip(shape_boxes, 0, size)
        labels[index, : len(shape_labels)] = shape_labels - 1  # RetinaNet classes start at 0
    return images, {"boxes": boxes, "labels": labels}


def iou(a, b):
    top, left = np.maximum(a[:2], b[:2])
    bottom, right = np.minimum(a[2:], b[2:])
    inter = max(0.0, bottom - top) * max(0.0, right - left)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return inter / max(area(a) + area(b) - inter, 1e-9)


def recall_at_half(predictions, targets):
    found = total = 0
    for index in range(len(targets["labels"])):
        count = int(predictions["num_detections"][index])
        for box, label in zip(targets["boxes"][index], targets["labels"][index]):
            if label < 0:
                continue
            total += 1
            found += any(
                predictions["labels"][index][k] == label and iou(predictions["boxes"][index][k], box) >= 0.5
                for k in range(count)
            )
    return found / max(total, 1)


def build_detector(args):
    import keras_hub

    from keras_swiftformer import SwiftFormerBackbone

    weights = None if args.weights.lower() == "none" else args.weights
    architecture = {"depths": args.depths, "widths": args.widths} if args.depths else {}
    encoder = SwiftFormerBackbone(args.model, weights=weights, input_shape=(args.image_size, args.image_size, 3), **architecture)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder, min_level=3, max_level=5, use_p5=False, image_shape=(args.image_size, args.image_size, 3)
    )
    return keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=len(CLASS_NAMES) - 1, bounding_box_format="yxyx", preprocessor=None
    )


def draw(images, predictions, targets, path, threshold=0.5):
    from PIL import Image, ImageDraw

    tiles = []
    for index in range(min(4, len(images))):
        tile = Image.fromarray(images[index]).resize((256, 256), Image.BILINEAR)
        pen = ImageDraw.Draw(tile)
        scale = 256 / images.shape[1]
        for box, label in zip(targets["boxes"][index], targets["labels"][index]):
            if label >= 0:
                pen.rectangle([box[1] * scale, box[0] * scale, box[3] * scale, box[2] * scale], outline="white")
        for k in range(int(predictions["num_detections"][index])):
            if predictions["confidence"][index][k] < threshold:
                continue
            y0, x0, y1, x1 = predictions["boxes"][index][k] * scale
            name = CLASS_NAMES[int(predictions["labels"][index][k]) + 1]
            pen.rectangle([x0, y0, x1, y1], outline=(0, 255, 0), width=2)
            pen.text((x0 + 2, y0 + 1), f"{name} {predictions['confidence'][index][k]:.2f}", fill=(0, 255, 0))
        tiles.append(tile)
    sheet = Image.new("RGB", (256 * len(tiles), 256))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, (256 * index, 0))
    sheet.save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", default="XS", help="XS, S, L1 or L3")
    parser.add_argument("--weights", default="imagenet", help="encoder weights: imagenet, a path, or none")
    parser.add_argument("--depths", type=int, nargs=4, help="a custom encoder instead of --model")
    parser.add_argument("--widths", type=int, nargs=4, help="a custom encoder instead of --model")
    parser.add_argument("--image-size", type=int, default=128, help="side of the square images")
    parser.add_argument("--train", type=int, default=512, help="training images")
    parser.add_argument("--val", type=int, default=32, help="held-out images")
    parser.add_argument("--epochs", type=int, default=30, help="epochs to train")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("-o", "--output", default="runs/retinanet", help="folder for detections.png")
    args = parser.parse_args(argv)

    import keras

    from keras_swiftformer.preprocessing import preprocess_input

    os.makedirs(args.output, exist_ok=True)
    train_images, train_targets = detection_set(args.train, args.image_size, seed=0)
    val_images, val_targets = detection_set(args.val, args.image_size, seed=1)
    detector = build_detector(args)
    detector.compile(optimizer=keras.optimizers.AdamW(args.lr, weight_decay=1e-4, global_clipnorm=10.0))
    detector.fit(preprocess_input(train_images.astype("float32")), train_targets, batch_size=args.batch_size,
                 epochs=args.epochs, verbose=2)
    predictions = detector.predict(preprocess_input(val_images.astype("float32")), verbose=0)
    predictions = {key: keras.ops.convert_to_numpy(value) for key, value in predictions.items()}
    recall = recall_at_half(predictions, val_targets)
    draw(val_images, predictions, val_targets, os.path.join(args.output, "detections.png"))
    detector.save(os.path.join(args.output, "retinanet.keras"))
    print(json.dumps({"val_recall_at_iou_0.5": round(recall, 4), "output": args.output}))


if __name__ == "__main__":
    main()
