"""Classify an image on a Coral Edge TPU with a file from
`python -m conversion export ... --edgetpu` compiled by `edgetpu_compiler`.

    edgetpu_compiler swiftformer_xs_edgetpu.tflite          # -> swiftformer_xs_edgetpu_edgetpu.tflite
    python coral_edgetpu.py swiftformer_xs_edgetpu_edgetpu.tflite chelsea.jpg

Needs the Edge TPU runtime (libedgetpu) and pycoral from Coral's own package index
(https://coral.ai/software/); the PyPI project named "pycoral" is unrelated, do not install it
from PyPI. Falls back to the CPU (LiteRT interpreter) for the uncompiled file when no Edge TPU
is present, so the script can be tried anywhere.
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image


def load_contract(model_path):
    base = model_path.replace("_edgetpu.tflite", ".tflite") if model_path.endswith("_edgetpu_edgetpu.tflite") else model_path
    with open(os.path.splitext(base)[0] + ".json") as file:
        return json.load(file)


def evaluation_crop(path, size):
    """The official evaluation transform: shorter side to int(256/224*size), bicubic, centre crop."""
    image = Image.open(path).convert("RGB")
    short = int(256 / 224 * size)
    w, h = image.size
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize((new_w, new_h), Image.BICUBIC)
    top, left = int(round((new_h - size) / 2)), int(round((new_w - size) / 2))
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def make_interpreter(model_path):
    try:
        from pycoral.utils.edgetpu import make_interpreter as coral_interpreter

        return coral_interpreter(model_path)
    except ImportError:
        from ai_edge_litert.interpreter import Interpreter

        print("pycoral not found: running on the CPU with the LiteRT interpreter", file=sys.stderr)
        return Interpreter(model_path=model_path)


def main(model_path, image_path, top=5):
    contract = load_contract(model_path)
    interpreter = make_interpreter(model_path)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    size = inp["shape"][1]
    pixels = evaluation_crop(image_path, size)  # uint8 RGB: the Edge TPU file folds normalisation in
    scale, zero_point = inp["quantization"]
    if inp["dtype"] == np.uint8 and not (abs(scale - 1.0) < 1e-6 and zero_point == 0):
        # Re-quantise pixels to the input's scale/zero point (the file records both).
        pixels = np.clip(np.round(pixels / scale + zero_point), 0, 255).astype(np.uint8)
    interpreter.set_tensor(inp["index"], pixels[None])
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"])[0].astype(np.float32)
    scale, zero_point = out["quantization"]
    scores = (raw - zero_point) * scale  # probabilities (the file ends in a softmax), else logits
    labels_file = contract.get("labels")
    labels = open(os.path.join(os.path.dirname(model_path), labels_file)).read().splitlines() if labels_file else None
    probabilities = contract.get("probabilities", False)
    for index in np.argsort(-scores)[:top]:
        score = f"{scores[index]:7.2%}" if probabilities else f"{scores[index]:8.3f}"
        print(f"{score}  {labels[index] if labels else index}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.splitlines()[:2]), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("model", help="the exported .tflite (its .json contract beside it)")
    parser.add_argument("image", help="a photograph")
    parser.add_argument("--top", type=int, default=5, help="classes to print")
    args = parser.parse_args()
    for path in (args.model, args.image):
        if not os.path.isfile(path):
            parser.error(f"{path} not found")
    main(args.model, args.image, args.top)
