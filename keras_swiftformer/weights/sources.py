"""What `weights=` accepts, each as a `WeightsSource` that knows the model it belongs to.

* a Keras `.weights.h5` file (written by `keras_swiftformer.convert.convert_checkpoint`,
  the training recipes or `save_weights`);
* a Keras `.keras` model file;
* an official PyTorch `.pth` checkpoint or a transformers `.safetensors`/`.bin` file or model
  folder, converted on the fly (needs the `conversion` / `torch` extras);
* "imagenet" / "imagenet_v1": the official checkpoints, downloaded and converted once, then
  read from the cache (`keras_swiftformer.weights.pretrained`).
"""

import abc
import os
import warnings

import keras

from keras_swiftformer.variants import architecture, find_variant
from keras_swiftformer.weights import pretrained
from keras_swiftformer.weights.checkpoint import (
    CHECKPOINT_SUFFIXES,
    CheckpointError,
    infer_architecture,
    read_checkpoint,
)
from keras_swiftformer.weights.keras_files import (
    KERAS_WEIGHTS_SUFFIX,
    read_head,
    read_metadata,
    save_weights,
    stored_shapes,
)
from keras_swiftformer.weights.port import port_state_dict

HEAD_LAYERS = ("head", "dist_head")
PRETRAINED = tuple(pretrained.PRETRAINED_WEIGHTS)


def describe(depths, widths):
    variant = find_variant(depths, widths)
    name = f"SwiftFormer-{variant}" if variant else "a custom SwiftFormer"
    return f"{name} (depths {tuple(depths)}, widths {tuple(widths)})"


def copy_matching_layers(source, target, skip=()):
    """Copies the weights of every layer of `target` that `source` has under the same name; a
    layer whose variables differ in shape is an error naming it (nothing is copied then)."""
    source_layers = {layer.name: layer for layer in source.layers}
    pairs = []
    for layer in target.layers:
        if layer.name in skip or not layer.weights or layer.name not in source_layers:
            continue
        values = source_layers[layer.name].weights
        shapes = [tuple(v.shape) for v in values]
        if shapes != [tuple(v.shape) for v in layer.weights]:
            raise ValueError(
                f"Could not copy the weights of layer '{layer.name}' from '{source.name}' into "
                f"'{target.name}': they have other shapes ({len(values)} variables of shapes "
                f"{shapes[:2]}...). Build the same configuration the weights were saved from."
            )
        pairs.extend(zip(layer.weights, values))
    for destination, value in pairs:
        # Copied, not shared: on JAX, Keras' fit and predict donate a model's arrays, which
        # would delete them from the other model too.
        destination.assign(keras.ops.convert_to_numpy(value))


class WeightsSource(abc.ABC):
    """Weights to load, with what is known about the model they belong to.

    Attributes (None where the source does not say): depths, widths, classes,
    distillation, attention_pooling; and for fine-tuned weights class_names and image_size
    (the side they were trained at).
    """

    depths = widths = classes = distillation = attention_pooling = None
    class_names = image_size = None

    def __init__(self, description):
        self.description = description

    def check_architecture(self, depths, widths):
        if self.depths is None:
            return
        if tuple(self.depths) != tuple(depths) or tuple(self.widths) != tuple(widths):
            raise ValueError(
                f"The weights {self.description} are for {describe(self.depths, self.widths)}, "
                f"but the model being built is {describe(depths, widths)}. Build the model "
                "these weights are for (on the command line, pass its --model or leave --model "
                "out: a weights file names its architecture), or pass the weights of this one."
            )

    def choose_attention_pooling(self, requested):
        if requested is None:
            return self.attention_pooling
        if self.attention_pooling is not None and requested != self.attention_pooling:
            warnings.warn(
                f"The weights {self.description} were trained with "
                f"attention_pooling={self.attention_pooling!r} but the model is built with "
                f"attention_pooling={requested!r}; its outputs will differ from the original "
                "model's.",
                stacklevel=3,
            )
        return requested

    def has_head(self, include_top, classes, distillation):
        """Whether a model built with these head options can take the weights as they are."""
        return self.classes is None or (
            include_top and int(classes) == self.classes and distillation == self.distillation
        )

    @abc.abstractmethod
    def fill(self, model):
        """Loads into `model`, built with the source's own head (see `has_head`)."""


class KerasWeightsFile(WeightsSource):
    """A `.weights.h5`: with the library's metadata record (converted, fine-tuned or cached
    weights) the architecture, head, attention and class names are known; a plain
    `save_weights` file still tells its head's size."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path
        metadata = read_metadata(path)
        if metadata is not None:
            self.depths = tuple(metadata["depths"])
            self.widths = tuple(metadata["widths"])
            self.classes = int(metadata["classes"])
            self.distillation = bool(metadata["distillation"])
            self.attention_pooling = metadata["attention_pooling"]
            self.class_names = metadata.get("class_names")
            self.image_size = metadata.get("image_size")
        else:
            head = read_head(path)
            if head is not None:
                self.classes, self.distillation = head

    def fill(self, model):
        # Keras loads a file of another architecture partly and silently (a layer it does not
        # find keeps its initial values): compare every variable's shape first.
        expected = sorted(tuple(variable.shape) for variable in model.weights)
        stored = stored_shapes(self.path)
        if stored != expected:
            raise ValueError(
                f"Could not load {self.path} into '{model.name}': the file was saved from a "
                f"model with a different architecture or head ({len(stored)} variables in the "
                f"file, {len(expected)} in the model, or shapes that differ). Build the same "
                "configuration it was saved from."
            )
        try:
            model.load_weights(self.path)
        except Exception as error:
            raise ValueError(
                f"Could not load {self.path} into '{model.name}': the file was saved from a "
                "model with a different architecture or head. Build the same configuration "
                f"it was saved from. (Keras said: {str(error)[:400]})"
            ) from error


class KerasModelFile(WeightsSource):
    """A whole model saved as `.keras`; the fine-tuning recipe's `final.keras` has its class
    names in the `labels.txt` beside it and its training side as its fixed input."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path
        self.model = keras.saving.load_model(path, compile=False)
        try:  # a SwiftFormer (classifier, backbone) names its variant; another model does not
            spec = architecture(self.model)
            self.depths, self.widths = spec["depths"], spec["widths"]
        except (ValueError, AttributeError):
            pass
        layers = {layer.name: layer for layer in self.model.layers}
        if "head" in layers:
            self.classes = int(layers["head"].units)
            self.distillation = "dist_head" in layers
        labels = os.path.join(os.path.dirname(os.path.abspath(path)), "labels.txt")
        if self.classes and os.path.isfile(labels):
            with open(labels, encoding="utf-8") as file:
                names = [line.rstrip("\n") for line in file if line.strip()]
            self.class_names = names if len(names) == self.classes else None
        height, width = tuple(self.model.inputs[0].shape)[1:3]
        self.image_size = height if height is not None and height == width else None

    def fill(self, model):
        copy_matching_layers(self.model, model)


class CheckpointFile(WeightsSource):
    """An official or transformers PyTorch checkpoint (or state dict), converted on the fly."""

    def __init__(self, source, state=None, layout="official"):
        super().__init__(source if isinstance(source, (str, os.PathLike)) else "state dict")
        if state is None:
            state, layout = read_checkpoint(source)
        self.state, self.layout = state, layout
        architecture = infer_architecture(self.state)
        self.depths = architecture["depths"]
        self.widths = architecture["widths"]
        self.classes = architecture["classes"]
        self.distillation = architecture["distillation"]
        # transformers' port and the Hub checkpoints implement the first release; an official
        # .pth does not record its release, so it is taken to be the current one.
        self.attention_pooling = "softmax_v1" if layout == "transformers" else None

    def fill(self, model):
        port_state_dict(model, self.state)


class PretrainedCheckpoint(CheckpointFile):
    """The official ImageNet checkpoint of a variant, downloaded now; the first model it fills
    is saved to the cache, so later builds read the cached `.weights.h5` instead."""

    def __init__(self, variant, weights, mirror=None, timeout=pretrained.DEFAULT_TIMEOUT):
        state, self.metadata = pretrained.fetch_checkpoint(variant, weights, mirror, timeout)
        super().__init__(f"'{weights}' ({self.metadata['source']})", state)
        self.attention_pooling = self.metadata["attention_pooling"]
        self.cache_path = pretrained.cached_path(variant, weights)

    def fill(self, model):
        try:
            super().fill(model)
        except CheckpointError as error:
            raise pretrained.WeightsDownloadError(
                f"The weights {self.description} do not fit SwiftFormer-"
                f"{self.metadata['variant']}: {error}"
            ) from error
        save_weights(model, self.cache_path, {
            **self.metadata,
            "depths": list(self.depths),
            "widths": list(self.widths),
            "classes": self.classes,
            "distillation": self.distillation,
        })


def inspect_weights(weights, depths=None, widths=None):
    """A `WeightsSource` for what the user passed as `weights=`.

    "imagenet" / "imagenet_v1" need the model's `depths` and `widths` to pick the variant.
    """
    if isinstance(weights, WeightsSource):
        return weights
    if isinstance(weights, str) and weights in PRETRAINED:
        variant = pretrained.pretrained_variant(depths, widths, weights)
        cached = pretrained.cached_weights(variant, weights)
        return KerasWeightsFile(cached) if cached else PretrainedCheckpoint(variant, weights)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None, 'imagenet', 'imagenet_v1', or a path to a .weights.h5, "
            f".keras, .pth, .bin or .safetensors file. Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Weights file not found: {path}. Pass 'imagenet', 'imagenet_v1', None for random weights "
            "(--weights none on the command line), or a path to a .weights.h5, .keras, .pth, .bin or "
            ".safetensors file."
        )
    if path.endswith(KERAS_WEIGHTS_SUFFIX):
        return KerasWeightsFile(path)
    if path.endswith(".keras"):
        return KerasModelFile(path)
    if not os.path.isdir(path) and not path.lower().endswith(CHECKPOINT_SUFFIXES):
        raise ValueError(
            f"Unrecognised weights file {path}: its name does not end in "
            f"{', '.join((KERAS_WEIGHTS_SUFFIX, '.keras') + CHECKPOINT_SUFFIXES)}. Pass Keras weights "
            "(.weights.h5 or .keras), an official or transformers checkpoint, or a transformers model folder."
        )
    return CheckpointFile(path)


def variant_held_by(weights):
    """The variant ("XS", "S", "L1", "L3") whose architecture a weights file records; None
    for None, a pretrained name, or a custom architecture. What a command line builds when
    --model is left out."""
    if weights is None or (isinstance(weights, str) and (weights in PRETRAINED or weights.lower() == "none")):
        return None
    source = inspect_weights(weights)
    return find_variant(source.depths, source.widths) if source.depths else None
