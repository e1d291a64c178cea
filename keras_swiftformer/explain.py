"""See what a SwiftFormer looks at: attention maps of its Efficient Additive Attention and
Grad-CAM class activation maps, on the TensorFlow, JAX and PyTorch backends.

* `attention_maps(model, images)`: per stage, the token weights `a` of the stage's
  SwiftFormer Encoder (the weights that pool the global query), as maps of the image's size.
* `class_activation_map(model, images, class_index=None)`: Grad-CAM (Selvaraju et al. 2017)
  on the feature map the classifier pools, with the backend's own gradients.
* `explain(model, image, ...)` gathers both and the top-5 classes; `draw_explanation` writes
  them as one PNG; `explain_command` is what `swiftformer explain IMAGE` runs.

Every map is upsampled (bilinear) to the image's size, lies in [0, 1] and is finite.
"""

import dataclasses
import difflib
import os
import textwrap

import keras
import numpy as np
from keras import ops

from keras_swiftformer.io import atomic_path
from keras_swiftformer.layers.swiftformer_encoder import SwiftFormerEncoder
from keras_swiftformer.models.swiftformer import build_with_record
from keras_swiftformer.optional import require
from keras_swiftformer.preprocessing import imagenet_classes, load_image, preprocess_input

# Why a first-release model has no attention map to show (also written in its panels).
FIRST_RELEASE_REASON = (
    "First release (softmax_v1 attention): every token weight is exactly 1, so the "
    "attention weighs all tokens alike and there is no map to show."
)
TOP = 5


@dataclasses.dataclass
class AttentionMap:
    """The token weights of one stage's SwiftFormer Encoder.

    stage: 0-based stage index; layer: the encoder's name; grid: (rows, columns) of tokens;
    stride: image pixels per token; maps: (H, W) per image (a leading batch axis when the
    input had one), `|a|` rescaled to [0, 1] per map (0: the least weighted token, 1: the
    most), or None when `unavailable` says why.
    """

    stage: int
    layer: str
    grid: tuple
    stride: float
    maps: np.ndarray = None
    unavailable: str = None


@dataclasses.dataclass
class Explanation:
    """What `explain` found for one image.

    attention: one `AttentionMap` per stage; class_activation_map: (H, W) Grad-CAM in [0, 1]
    for `class_index`/`class_name`; top: the top-5 classes as (name, probability).
    """

    attention: list
    class_activation_map: np.ndarray
    class_index: int
    class_name: str
    top: list


def _images(images):
    """(B, H, W, C) float32 NumPy images and whether a single (H, W, C) image was given."""
    images = np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
    if images.ndim == 3:
        return images[None], True
    if images.ndim != 4:
        raise ValueError(
            "Expected normalised images (H, W, 3) or (batch, H, W, 3), channels last, as "
            f"`keras_swiftformer.load_image` returns them. Received: shape={images.shape}"
        )
    return images, False


def _encoders(model):
    """The SwiftFormer Encoder of every stage (the layers holding the attention), in order."""
    encoders = [layer for layer in getattr(model, "layers", ()) if isinstance(layer, SwiftFormerEncoder)]
    if not encoders:
        raise ValueError(
            "Attention maps and Grad-CAM need a SwiftFormer classifier built by keras_swiftformer "
            "(`SwiftFormer`, `SwiftFormerL1`, ...): it has a SwiftFormerEncoder (Efficient Additive "
            f"Attention) per stage, and model '{getattr(model, 'name', model)}' has none. "
            f"Received: model={type(model).__name__}"
        )
    return encoders


def _pooled_features(model):
    """The layer that pools the last stage's output for the classifier; its input is what
    Grad-CAM differentiates against."""
    names = {layer.name: layer for layer in model.layers}
    if "head" not in names or "avg_pool" not in names:
        raise ValueError(
            f"Grad-CAM needs the classifier head, and model '{model.name}' has none (built with "
            "include_top=False?). Build the model with include_top=True (the default), or use "
            "`attention_maps`, which needs no head."
        )
    return names


def _head_logits(names):
    """The classifier from the pooled feature map to the logits (before any activation), as
    the model computes it: average pooling, then the class head averaged with the
    distillation head where there is one."""
    pool, head, dist_head = names["avg_pool"], names["head"], names.get("dist_head")
    average = names.get("head_average")

    def logits(features):
        pooled = pool(features)
        if dist_head is None:
            return head(pooled)
        return average([head(pooled), dist_head(pooled)])

    return logits


def _upsample(maps, size):
    """(B, h, w) grid maps -> (B, H, W), bilinear, as NumPy."""
    resized = ops.image.resize(
        ops.convert_to_tensor(maps[..., None].astype("float32")), size, interpolation="bilinear",
        antialias=False, data_format="channels_last",
    )
    return np.asarray(ops.convert_to_numpy(resized), dtype="float32")[..., 0]


def _rescale(maps, low=None):
    """Per map to [0, 1]: (x - low) / (max - low), low the map's minimum unless given; a flat
    map becomes zeros. Non-finite values (none expected) become 0 first."""
    maps = np.nan_to_num(maps.astype("float64"), nan=0.0, posinf=0.0, neginf=0.0)
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True) if low is None else np.full_like(maps[:1], low)
    span = maps.max(axis=axes, keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return np.clip(np.where(span > 0, (maps - low) / safe, 0.0), 0.0, 1.0).astype("float32")


def _forward(model, images, with_head):
    """Inputs of every stage's encoder (and the pooled feature map) in one call."""
    encoders = _encoders(model)
    outputs = [encoder.input for encoder in encoders]
    names = _pooled_features(model) if with_head else None
    if with_head:
        outputs.append(names["avg_pool"].input)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    values = keras.Model(inputs, outputs, name=f"{model.name}_explain")(images, training=False)
    return encoders, list(values), names


def _attention_from(encoders, encoder_inputs, image_size, single):
    results = []
    for stage, (encoder, x) in enumerate(zip(encoders, encoder_inputs)):
        grid = tuple(int(s) for s in x.shape[1:3])
        stride = image_size[0] / grid[0]
        if encoder.attn.attention_pooling != "normalize":
            results.append(AttentionMap(stage, encoder.name, grid, stride, None, FIRST_RELEASE_REASON))
            continue
        # The encoder's own layers, as its `call` runs them: local representation, then the
        # attention's token weights (the formula its `call` uses).
        local = encoder.local_representation(x, training=False)
        weights = np.abs(ops.convert_to_numpy(encoder.attn.token_weights(local)))[..., 0]
        maps = _rescale(_upsample(weights, image_size))
        results.append(AttentionMap(stage, encoder.name, grid, stride, maps[0] if single else maps))
    return results


def attention_maps(model, images):
    """The attention of every stage's SwiftFormer Encoder, as maps of the image's size.

    Args:
        model: a SwiftFormer built by this library (with or without its head).
        images: normalised images, (H, W, 3) or (batch, H, W, 3) (`load_image` output).

    Returns:
        A list of `AttentionMap`, one per stage. Each map is `|a|` (the length of each
        token's contribution to the global query: `a` are the L2-normalised `q . w_g /
        sqrt(d)` and `q` has unit length), upsampled bilinearly and rescaled to [0, 1]. A
        first-release model (attention_pooling="softmax_v1") weighs every token by exactly 1:
        its entries have `maps=None` and `unavailable` saying so.
    """
    images, single = _images(images)
    encoders, values, _ = _forward(model, images, with_head=False)
    return _attention_from(encoders, values, images.shape[1:3], single)


def _score_gradients(head, features, choose):
    """Logits of `head(features)` and the gradient of the chosen classes' logits (`choose`:
    logits -> one-hot rows) with respect to `features`, with the backend's own automatic
    differentiation. Keras has no backend-neutral gradient, so each branch imports its
    framework, which is the backend in use and therefore installed."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = require("tensorflow", "Grad-CAM on the TensorFlow backend")
        features = tf.convert_to_tensor(features)
        with tf.GradientTape() as tape:
            tape.watch(features)
            logits = head(features)
            selected = tf.constant(choose(logits.numpy()))
            score = tf.reduce_sum(logits * selected)
        return logits.numpy(), tape.gradient(score, features).numpy()
    if backend == "jax":
        jax = require("jax", "Grad-CAM on the JAX backend")
        logits, pullback = jax.vjp(head, features)
        (gradients,) = pullback(jax.numpy.asarray(choose(np.asarray(logits))))
        return np.asarray(logits), np.asarray(gradients)
    if backend == "torch":
        torch = require("torch", "Grad-CAM on the PyTorch backend")
        features = features.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = head(features)
            selected = torch.as_tensor(choose(logits.detach().cpu().numpy()), device=logits.device)
            (gradients,) = torch.autograd.grad((logits * selected).sum(), features)
        return logits.detach().cpu().numpy(), gradients.cpu().numpy()
    raise ValueError(
        "Grad-CAM runs on the tensorflow, jax and torch backends. "
        f"Received: backend={backend!r}"
    )


def _class_indices(class_index, count, classes):
    """None (the predicted class) or one index per image, checked."""
    if class_index is None:
        return None
    indices = np.broadcast_to(np.asarray(class_index, dtype="int64"), (count,))
    if (indices < 0).any() or (indices >= classes).any():
        raise ValueError(
            f"`class_index` must lie in [0, {classes}) for this model's {classes} classes. "
            f"Received: class_index={class_index!r}"
        )
    return indices


def _grad_cam(names, features, class_index, image_size):
    """Grad-CAM maps (B, H, W) in [0, 1], the logits, and the explained class per image."""
    head = _head_logits(names)
    classes = int(names["head"].units)
    indices = _class_indices(class_index, int(features.shape[0]), classes)
    chosen = []

    def choose(logits):
        picked = np.argmax(logits, axis=-1) if indices is None else indices
        chosen.append(picked)
        return np.eye(classes, dtype=logits.dtype)[picked]

    logits, gradients = _score_gradients(head, features, choose)
    features = np.asarray(ops.convert_to_numpy(features), dtype="float32")
    # Grad-CAM: channel weights are the spatially averaged gradients; the map is the ReLU of
    # the weighted sum of the channels. (With this head, average pooling then linear, it is
    # also exactly the CAM of Zhou et al. 2016: the class logit's contribution per position.)
    channel_weights = gradients.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((features * channel_weights).sum(axis=-1), 0.0)
    return _rescale(_upsample(cam, image_size), low=0.0), logits, np.asarray(chosen[0])


def class_activation_map(model, images, class_index=None):
    """Grad-CAM on the last stage's output (the feature map the classifier pools).

    Args:
        model: a SwiftFormer classifier built by this library (include_top=True).
        images: normalised images, (H, W, 3) or (batch, H, W, 3).
        class_index: the class to explain (an int, or one per image); None: the predicted one.

    Returns:
        (H, W) or (batch, H, W) float32 maps in [0, 1] (divided by their maximum; all zeros
        where nothing in the image supports the class), upsampled bilinearly.
    """
    images, single = _images(images)
    _, values, names = _forward(model, images, with_head=True)
    maps, _, _ = _grad_cam(names, values[-1], class_index, images.shape[1:3])
    return maps[0] if single else maps


def _class_names(classes, class_names):
    """(display names, lookup table name -> index) for a model with `classes` outputs."""
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(class_names) != classes:
            raise ValueError(
                f"`class_names` must name each of the model's {classes} classes. "
                f"Received: {len(class_names)} names"
            )
        lookup = {}
        for index, name in enumerate(class_names):
            lookup.setdefault(name.strip().lower(), index)
        return class_names, lookup
    if classes == 1000:
        rows = imagenet_classes()
        display = [names.split(",")[0].strip() for _, names in rows]
        # A first name wins over another class's synonym; of two classes with one first name
        # ("crane": n02012849 the bird, n03126707 the machine) the first wins and the WordNet
        # id picks the other.
        lookup = {}
        for index, name in enumerate(display):
            lookup.setdefault(name.lower(), index)
        for index, (wnid, names) in enumerate(rows):
            lookup.setdefault(wnid.lower(), index)
            for name in names.split(","):
                lookup.setdefault(name.strip().lower(), index)
        return display, lookup
    names = [f"class {i}" for i in range(classes)]
    return names, {name: i for i, name in enumerate(names)}


def _class_index(class_name, names, lookup):
    if class_name is None:
        return None
    if isinstance(class_name, str) and class_name.strip().isdigit() and class_name.strip() not in lookup:
        class_name = int(class_name)  # `--class 281` on the command line
    if isinstance(class_name, (int, np.integer)) and not isinstance(class_name, bool):
        if 0 <= int(class_name) < len(names):
            return int(class_name)
        raise ValueError(
            f"Class index {int(class_name)} is out of range: the model has {len(names)} classes, "
            f"indices 0 to {len(names) - 1}. Received: class_name={class_name!r}"
        )
    if str(class_name).strip().lower() in lookup:
        return lookup[str(class_name).strip().lower()]
    close = difflib.get_close_matches(str(class_name).lower(), list(lookup), n=5, cutoff=0.6)
    hint = f"Did you mean: {', '.join(repr(c) for c in close)}? " if close else ""
    examples = ", ".join(repr(name) for name in names[: min(5, len(names))])
    raise ValueError(
        f"No class named {class_name!r} among the model's {len(names)} classes. {hint}"
        f"Valid names include {examples}, ... (or pass the class index). "
        f"Received: class_name={class_name!r}"
    )


def explain(model, image, class_name=None, class_names=None, image_size=224):
    """Attention maps, Grad-CAM and the top-5 classes of one image.

    Args:
        model: a SwiftFormer classifier built by this library.
        image: a normalised (H, W, 3) image (`load_image` output) or an image file, which is
            read with the official evaluation transform at `image_size`.
        class_name: the class Grad-CAM explains (a name, a WordNet id for ImageNet, or an
            index); None: the predicted class.
        class_names: the model's class names; None: ImageNet's for 1000 classes, else
            "class 0", "class 1", ...

    Returns:
        An `Explanation`.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image, image_size)
    images, _ = _images(image)
    if images.shape[0] != 1:
        raise ValueError(f"`explain` takes one image. Received: shape={images.shape}")
    encoders, values, names = _forward(model, images, with_head=True)
    display, lookup = _class_names(int(names["head"].units), class_names)
    index = _class_index(class_name, display, lookup)
    size = images.shape[1:3]
    attention = _attention_from(encoders, values[:-1], size, single=True)
    cam, logits, chosen = _grad_cam(names, values[-1], index, size)
    logits = logits[0].astype("float64")
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")[:TOP]
    return Explanation(
        attention=attention,
        class_activation_map=cam[0],
        class_index=int(chosen[0]),
        class_name=display[int(chosen[0])],
        top=[(display[i], float(probabilities[i])) for i in order],
    )


def _overlay(axis, pixels, heat, title):
    axis.imshow(pixels)
    if heat is not None:
        axis.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0, interpolation="bilinear")
    axis.set_title(title, fontsize=10)
    axis.set_axis_off()


def draw_explanation(result, image_pixels, path):
    """Writes `result` (an `Explanation`) as one PNG: the photo, each stage's attention, the
    Grad-CAM of the explained class, and the top-5 classes with their probabilities.

    Args:
        result: what `explain` returned for the image.
        image_pixels: the image as RGB pixels in [0, 255], (H, W, 3), the size of the maps
            (`load_image(path, size, normalize=False)`).
        path: the PNG to write (atomically).

    Returns:
        `path`.
    """
    figure_module = require("matplotlib.figure", "drawing explanations", extra="explain")
    agg = require("matplotlib.backends.backend_agg", "drawing explanations", extra="explain")
    pixels = np.asarray(image_pixels, dtype="float32")
    if pixels.ndim != 3 or pixels.shape[:2] != result.class_activation_map.shape:
        raise ValueError(
            "`image_pixels` must be the explained image as (H, W, 3) pixels of the maps' size "
            f"{result.class_activation_map.shape}. Received: shape={pixels.shape}"
        )
    pixels = np.clip(pixels / 255.0, 0.0, 1.0)
    panels = 2 + len(result.attention) + 1
    figure = figure_module.Figure(figsize=(2.3 * panels, 2.9), dpi=100)
    agg.FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels)
    _overlay(axes[0], pixels, None, "image")
    for axis, stage in zip(axes[1:], result.attention):
        title = f"stage {stage.stage + 1} attention\n{stage.grid[0]}x{stage.grid[1]} tokens"
        if stage.maps is None:
            _overlay(axis, pixels * 0.3 + 0.7, None, title)
            axis.text(0.5, 0.5, textwrap.fill(stage.unavailable, 24, break_long_words=False), transform=axis.transAxes,
                      ha="center", va="center", fontsize=7.5, wrap=True)
        else:
            _overlay(axis, pixels, stage.maps, title)
    _overlay(axes[-2], pixels, result.class_activation_map, f"Grad-CAM\n{textwrap.shorten(result.class_name, 28)}")
    lines = [f"{probability:6.1%}  {textwrap.shorten(name, 22)}" for name, probability in result.top]
    axes[-1].set_axis_off()
    axes[-1].set_title(f"top-{len(result.top)} classes", fontsize=10)
    axes[-1].text(0.0, 0.95, "\n".join(lines), transform=axes[-1].transAxes, va="top",
                  family="monospace", fontsize=8.5)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    return path


def explain_command(image, model=None, weights="imagenet", class_name=None, output="explanation.png", image_size=None):
    """`swiftformer explain IMAGE`: explains the image and writes the PNG; prints what it
    wrote and the top-5 classes, and returns the `Explanation`."""
    if not os.path.isfile(image):
        raise FileNotFoundError(f"Image not found: {image}")
    network, names, trained_size = build_with_record(model, weights)
    pixels = load_image(image, image_size or trained_size or 224, normalize=False)
    result = explain(network, preprocess_input(pixels), class_name=class_name, class_names=names)
    draw_explanation(result, pixels, output)
    print(f"Wrote {os.path.abspath(output)}: Grad-CAM of '{result.class_name}'.")
    for name, probability in result.top:
        print(f"  {probability:7.2%}  {name}")
    for stage in result.attention:
        if stage.unavailable:
            print(f"  stage {stage.stage + 1}: {stage.unavailable}")
            break
    return result
