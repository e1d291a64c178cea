"""Trains a small SwiftFormer to tell disks, squares and triangles pasted onto photographs,
then draws what it looks at (the README's `docs/explain.png`):

    python examples/explain_shapes.py -o docs/explain.png

One shape of random colour, size and position per image, on a random crop of one of the
photographs scikit-image ships, so the class can only be read from the shape's outline and
the model has to find it. On held-out images the script reports how much of the Grad-CAM
mass lies inside the shape's box, against the box's share of the image (1.0: no better than a
uniform map). The picture is drawn by `draw_explanation`, the code path of `swiftformer
explain`. `tests/test_explain.py` trains the same model (smaller) and asserts the ratio.
"""

import argparse
import time

import keras
import numpy as np

import keras_swiftformer
from keras_swiftformer.explain import class_activation_map, draw_explanation, explain
from keras_swiftformer.preprocessing import preprocess_input

CLASS_NAMES = ("disk", "square", "triangle")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
# Small enough to train in well under a minute on a laptop CPU (PyTorch backend). Two stages,
# so the last one (the feature map Grad-CAM reads) is an 8x8 grid at 64 pixels: with four
# stages it would be 2x2, too coarse to localise a shape a third of the image wide.
DEPTHS, WIDTHS = (1, 2), (24, 48)


def photographs():
    import skimage.data  # an example's dependency, not the library's

    return [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]


def make_shapes(count, size=64, seed=0, photos=None):
    """`count` images (uint8, size x size x 3), their labels (indices of CLASS_NAMES) and the
    shape's box (top, left, bottom, right; pixels, bottom/right exclusive)."""
    random = np.random.RandomState(seed)
    photos = photographs() if photos is None else photos
    rows, cols = np.mgrid[:size, :size] + 0.5
    images = np.empty((count, size, size, 3), np.uint8)
    labels = random.randint(0, len(CLASS_NAMES), count)
    boxes = np.empty((count, 4), np.int32)
    for index in range(count):
        photo = photos[random.randint(len(photos))]
        side = int(min(photo.shape[:2]) * random.uniform(0.3, 1.0))
        top = random.randint(0, photo.shape[0] - side + 1)
        left = random.randint(0, photo.shape[1] - side + 1)
        pick = (np.arange(size) * side / size).astype(int)
        image = photo[top + pick][:, left + pick].astype(np.float32)
        radius = random.uniform(0.12, 0.2) * size
        y, x = random.uniform(radius + 1, size - radius - 1, 2)
        dy, dx = rows - y, cols - x
        if labels[index] == 0:
            inside = dy**2 + dx**2 <= radius**2
        elif labels[index] == 1:
            inside = (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
        else:  # pointing up or down, so the class is not a position or an orientation cue
            dy = dy * random.choice([-1, 1])
            inside = (np.abs(dy) <= radius) & (np.abs(dx) <= (dy + radius) / 2)
        # Each class has its texture as well as its outline (solid, stripes, checks), in
        # random colours: cues that only the shape's own pixels carry.
        fill = random.uniform(0, 255, 3) + random.normal(0, 10, (size, size, 1))
        second = random.uniform(0, 255, 3)
        if labels[index] == 1:
            fill = np.where(((rows + cols) // 4 % 2).astype(bool)[..., None], fill, second)
        elif labels[index] == 2:
            fill = np.where(((rows // 4 + cols // 4) % 2).astype(bool)[..., None], fill, second)
        image[inside] = np.clip(fill[inside], 0, 255)
        images[index] = image.astype(np.uint8)
        ys, xs = np.nonzero(inside)
        boxes[index] = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    return images, labels, boxes


def build_model(size):
    return keras_swiftformer.SwiftFormer(DEPTHS, WIDTHS, input_shape=(size, size, 3), classes=len(CLASS_NAMES))


def train(images, labels, epochs=15, seed=0, verbose=0):
    """A freshly initialised model trained on the images (pixels in [0, 255])."""
    keras.utils.set_random_seed(seed)
    model = build_model(images.shape[1])
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(preprocess_input(images), labels, batch_size=32, epochs=epochs, verbose=verbose, shuffle=True)
    return model


def mass_in_box(maps, boxes):
    """Per image: the map's share of mass inside the box, divided by the box's share of the
    image. 1.0 is what a uniform map scores; above 1, the map concentrates on the shape."""
    ratios = []
    for heat, (top, left, bottom, right) in zip(maps, boxes):
        total = float(heat.sum())
        share = (bottom - top) * (right - left) / heat.size
        inside = float(heat[top:bottom, left:right].sum()) / total if total > 0 else share
        ratios.append(inside / share)
    return np.array(ratios)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="docs/explain.png")
    parser.add_argument("--train", type=int, default=1000, help="training images")
    parser.add_argument("--size", type=int, default=64, help="image side")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    photos = photographs()
    start = time.time()
    images, labels, _ = make_shapes(args.train, args.size, args.seed, photos)
    model = train(images, labels, args.epochs, args.seed, verbose=2)
    held_out, held_labels, boxes = make_shapes(200, args.size, args.seed + 1, photos)
    inputs = preprocess_input(held_out)
    predicted = np.argmax(keras.ops.convert_to_numpy(model.predict(inputs, verbose=0)), -1)
    accuracy = float((predicted == held_labels).mean())
    maps = class_activation_map(model, inputs, class_index=held_labels)
    ratio = mass_in_box(maps, boxes).mean()
    other = mass_in_box(maps, np.roll(boxes, 1, axis=0)).mean()
    print(f"trained in {time.time() - start:.0f} s; held-out accuracy {accuracy:.1%}; Grad-CAM mass in "
          f"the shape's box {ratio:.2f}x its share of the image (uniform map: 1.00x; the same maps "
          f"on another image's box: {other:.2f}x)")
    # The first held-out image the model gets right (the picture shows what it looks at when
    # it is right; the ratio above covers every held-out image).
    index = int(np.argmax(predicted == held_labels))
    result = explain(model, inputs[index], class_names=CLASS_NAMES)
    draw_explanation(result, held_out[index], args.output)
    print(f"wrote {args.output}: held-out image {index}, {result.class_name} "
          f"(true: {CLASS_NAMES[held_labels[index]]})")


if __name__ == "__main__":
    main()
