"""Loading weights into SwiftFormer models, and writing converted weights files.

`weights=` accepts:
* a Keras `.weights.h5` file (written by `conversion.convert_checkpoint` or `save_weights`);
* a Keras `.keras` model file;
* an official PyTorch `.pth` checkpoint or a transformers `.safetensors`/`.bin` file or model
  folder, converted on the fly (needs the `conversion` / `torch` extras).

Files written by the conversion carry a small JSON record (architecture, classes, which
official release's attention they need) as an HDF5 attribute, so a model built from them picks
the right attention and a wrong variant fails with a clear message.
"""

import abc
import json
import os
import tempfile

import keras

METADATA_ATTRIBUTE = "keras_swiftformer"
METADATA_FORMAT = 1
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
HEAD_LAYERS = ("head", "dist_head")


def atomic_save_weights(model, path, metadata=None):
    """`model.save_weights(path)` through a temporary file, plus the metadata record.

    The file appears under its final name only once complete, so an interrupted write never
    leaves a file that a later call would trust.
    """
    import h5py

    path = os.fspath(path)
    if not path.endswith(KERAS_WEIGHTS_SUFFIX):
        raise ValueError(
            f"Keras weights files must end in '{KERAS_WEIGHTS_SUFFIX}'. Received: path={path!r}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=".partial-", suffix=KERAS_WEIGHTS_SUFFIX, dir=directory
    )
    os.close(handle)
    try:
        model.save_weights(temporary, overwrite=True)
        if metadata is not None:
            with h5py.File(temporary, "a") as file:
                file.attrs[METADATA_ATTRIBUTE] = json.dumps(
                    {"format": METADATA_FORMAT, **metadata}, sort_keys=True
                )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def read_metadata(path):
    """The metadata record of a `.weights.h5` file, or None if it has none."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            raw = file.attrs.get(METADATA_ATTRIBUTE)
    except OSError as error:
        raise ValueError(
            f"Could not read {path} as a Keras weights file (HDF5): the file is truncated, "
            f"corrupt or of another format. ({error})"
        ) from error
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def describe(depths, widths):
    from keras_swiftformer.models.variants import find_variant

    variant = find_variant(depths, widths)
    name = f"SwiftFormer-{variant}" if variant else "a custom SwiftFormer"
    return f"{name} (depths {tuple(depths)}, widths {tuple(widths)})"


class WeightsSource(abc.ABC):
    """Weights to load, with what is known about the model they belong to.

    Attributes (None where the source does not say): depths, widths, classes,
    distillation, attention_pooling.
    """

    depths = widths = classes = distillation = attention_pooling = None

    def __init__(self, description):
        self.description = description

    def check_architecture(self, depths, widths):
        if self.depths is None:
            return
        if tuple(self.depths) != tuple(depths) or tuple(self.widths) != tuple(widths):
            raise ValueError(
                f"The weights {self.description} are for {describe(self.depths, self.widths)}, "
                f"but the model being built is {describe(depths, widths)}. Build the matching "
                "variant, or pass the weights of this one."
            )

    def choose_attention_pooling(self, requested):
        if requested is None:
            return self.attention_pooling
        if self.attention_pooling is not None and requested != self.attention_pooling:
            import warnings

            warnings.warn(
                f"The weights {self.description} were trained with "
                f"attention_pooling={self.attention_pooling!r} but the model is built with "
                f"attention_pooling={requested!r}; its outputs will differ from the original "
                "model's.",
                stacklevel=3,
            )
        return requested

    @abc.abstractmethod
    def fill(self, model):
        """Loads into `model`, built with the source's own head and attention."""

    def load_into(self, model, include_top, classes, distillation):
        same_head = (
            self.classes is None
            or (include_top and int(classes) == self.classes and distillation == self.distillation)
        )
        if same_head:
            self.fill(model)
            return
        from keras_swiftformer.models.swiftformer import SwiftFormer

        donor = SwiftFormer(
            self.depths,
            self.widths,
            input_shape=(None, None, model.inputs[0].shape[-1]),
            classes=self.classes,
            distillation=self.distillation,
            attention_pooling=self.attention_pooling or "normalize",
            name="donor",
        )
        self.fill(donor)
        copy_matching_layers(donor, model, skip=() if int(classes) == self.classes else HEAD_LAYERS)


def copy_matching_layers(source, target, skip=()):
    """Copies the weights of every layer of `target` that `source` has under the same name."""
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if layer.name in skip or not layer.weights or layer.name not in source_layers:
            continue
        for destination, value in zip(layer.weights, source_layers[layer.name].weights):
            destination.assign(value)


class KerasWeightsFile(WeightsSource):
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

    def fill(self, model):
        try:
            model.load_weights(self.path)
        except Exception as error:
            raise ValueError(
                f"Could not load {self.path} into '{model.name}': the file was saved from a "
                "model with a different architecture or head. Build the same configuration "
                f"it was saved from. (Keras said: {str(error)[:400]})"
            ) from error


class KerasModelFile(WeightsSource):
    def __init__(self, path):
        super().__init__(path)
        self.path = path
        self.model = keras.saving.load_model(path, compile=False)
        layers = {layer.name: layer for layer in self.model.layers}
        if "head" in layers:
            self.classes = int(layers["head"].units)
            self.distillation = "dist_head" in layers

    def fill(self, model):
        copy_matching_layers(self.model, model)


class CheckpointFile(WeightsSource):
    """An official or transformers PyTorch checkpoint, converted on the fly."""

    def __init__(self, source):
        from conversion.checkpoint import infer_architecture, read_checkpoint

        super().__init__(source if isinstance(source, (str, os.PathLike)) else "state dict")
        self.state, self.layout = read_checkpoint(source)
        architecture = infer_architecture(self.state)
        self.depths = architecture["depths"]
        self.widths = architecture["widths"]
        self.classes = architecture["classes"]
        self.distillation = architecture["distillation"]
        # transformers' port and the Hub checkpoints implement the first release; an official
        # .pth does not record its release, so it is taken to be the current one.
        self.attention_pooling = "softmax_v1" if self.layout == "transformers" else None

    def fill(self, model):
        from conversion.port import port_state_dict

        port_state_dict(model, self.state)


def inspect_weights(weights, depths=None, widths=None):
    """A `WeightsSource` for what the user passed as `weights=`.

    "imagenet" / "imagenet_v1" need the model's `depths` and `widths` to pick the variant.
    """
    if isinstance(weights, WeightsSource):
        return weights
    if isinstance(weights, str) and weights in ("imagenet", "imagenet_v1"):
        from keras_swiftformer.pretrained import fetch_weights, pretrained_variant

        return KerasWeightsFile(fetch_weights(pretrained_variant(depths, widths, weights), weights))
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None, 'imagenet', 'imagenet_v1', or a path to a .weights.h5, "
            f".keras, .pth, .bin or .safetensors file. Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Weights file not found: {path}. Pass None, 'imagenet', 'imagenet_v1', or a path "
            "to a .weights.h5, .keras, .pth, .bin or .safetensors file."
        )
    if path.endswith(KERAS_WEIGHTS_SUFFIX):
        return KerasWeightsFile(path)
    if path.endswith(".keras"):
        return KerasModelFile(path)
    return CheckpointFile(path)
