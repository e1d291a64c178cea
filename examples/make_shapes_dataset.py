"""Writes a small semantic-segmentation set with exact masks: disks and squares of random
colour pasted onto crops of real photographs (the ones scikit-image ships).

    python examples/make_shapes_dataset.py runs/shapes --train 96 --val 32 --image-size 64

Classes: 0 background (the photograph), 1 disk (one colour), 2 square (diagonal stripes of two
colours). Colours are drawn at random for every shape, so the class is read from outline and
texture, never from the colour. The
layout is the one `python -m training.segment` reads: DIR/{train,val}/{images,masks} and
DIR/classes.txt. Used by the segmentation tests and by the README's overlay example.
"""

import argparse
import os

import numpy as np

CLASS_NAMES = ("background", "disk", "square")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def _photos():
    import skimage.data

    return [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]


def make_example(photo, size, random, with_boxes=False):
    """One (image uint8 HxWx3, mask uint8 HxW) pair from a random crop of `photo`; with
    `with_boxes`, also the shapes' boxes (y0, x0, y1, x1 in pixels) and class indices."""
    scale = random.uniform(0.4, 1.0)
    side = int(min(photo.shape[:2]) * scale)
    top = random.randint(0, photo.shape[0] - side + 1)
    left = random.randint(0, photo.shape[1] - side + 1)
    crop = photo[top : top + side, left : left + side]
    indices = (np.arange(size) * side / size).astype(int)
    image = crop[indices][:, indices].astype(np.float32)
    mask = np.zeros((size, size), np.uint8)
    rows, cols = np.mgrid[:size, :size]
    boxes, labels = [], []
    for _ in range(random.randint(1, 4)):
        label = random.randint(1, len(CLASS_NAMES))
        radius = random.uniform(0.1, 0.22) * size
        y, x = random.uniform(radius, size - radius, 2)
        if label == 1:
            inside = (rows - y) ** 2 + (cols - x) ** 2 <= radius**2
        else:
            inside = (np.abs(rows - y) <= radius * 0.89) & (np.abs(cols - x) <= radius * 0.89)
        colour = random.uniform(0, 255, 3)
        fill = np.broadcast_to(colour, (size, size, 3)) + random.normal(0, 12, (size, size, 1))
        if label == 2:  # squares are striped in two colours: a texture as well as an outline
            stripes = ((rows + cols) // 3 % 2).astype(bool)
            fill = np.where(stripes[..., None], fill, random.uniform(0, 255, 3))
        image[inside] = np.clip(fill[inside], 0, 255)
        mask[inside] = label
        boxes.append([y - radius, x - radius, y + radius, x + radius])
        labels.append(label)
    if with_boxes:
        return image.astype(np.uint8), mask, np.array(boxes, np.float32), np.array(labels, np.int32)
    return image.astype(np.uint8), mask


def make_shapes_dataset(directory, train=96, val=32, size=64, seed=0):
    """Writes the set under `directory` and returns it; the photos are split between train
    and validation crops only by position, so validation images are new crops and shapes."""
    from PIL import Image

    random = np.random.RandomState(seed)
    photos = _photos()
    for split, count in (("train", train), ("val", val)):
        for folder in ("images", "masks"):
            os.makedirs(os.path.join(directory, split, folder), exist_ok=True)
        for index in range(count):
            image, mask = make_example(photos[random.randint(len(photos))], size, random)
            Image.fromarray(image).save(os.path.join(directory, split, "images", f"{index:04d}.jpg"), quality=95)
            Image.fromarray(mask).save(os.path.join(directory, split, "masks", f"{index:04d}.png"))
    with open(os.path.join(directory, "classes.txt"), "w") as file:
        file.write("\n".join(CLASS_NAMES) + "\n")
    return directory


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("directory", help="the dataset folder to create")
    parser.add_argument("--train", type=int, default=96, help="training pairs")
    parser.add_argument("--val", type=int, default=32, help="validation pairs")
    parser.add_argument("--image-size", type=int, default=64, help="side of the square images")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    make_shapes_dataset(args.directory, args.train, args.val, args.image_size, args.seed)
    print(f"wrote {args.train} + {args.val} pairs to {args.directory}")


if __name__ == "__main__":
    main()
