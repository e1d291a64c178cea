"""Exported files run as they are in MediaPipe Tasks (the task library Android's
`com.google.mediapipe.tasks.vision` wraps): the ImageClassifier on the default float32 and int8
files, the ImageSegmenter on a segmenter, on real photographs, named by the labels packed into
the files' TFLite metadata, and agreeing with Keras."""

import os

import keras
import numpy as np
import pytest
from helpers import TINY, optional, randomise_weights, to_numpy

optional("tensorflow")
optional("ai_edge_litert")
optional("skimage")
optional("PIL")
mp = optional("mediapipe")
vision = optional("mediapipe.tasks.python.vision")
schema = optional("mediapipe.tasks.metadata.metadata_schema_py_generated")

from skimage import data as photographs  # noqa: E402

from keras_swiftformer import SwiftFormerSegmenter, SwiftFormerXS  # noqa: E402
from keras_swiftformer.export import export_tflite, verify  # noqa: E402
from keras_swiftformer.export.metadata import associated_files, read_metadata  # noqa: E402
from keras_swiftformer.export.runtime import softmax  # noqa: E402
from keras_swiftformer.preprocessing import imagenet_classes, load_image, preprocess_input  # noqa: E402

pytestmark = pytest.mark.any_backend(runs_on="tensorflow")

PHOTOS = ("chelsea", "astronaut", "coffee")
IMAGENET_NAMES = [names.split(",")[0] for _, names in imagenet_classes()]


def crops(size):
    """The official evaluation crop of each photograph, uint8 RGB (size, size, 3)."""
    return np.stack([load_image(getattr(photographs, name)(), size, normalize=False)
                     for name in PHOTOS]).round().clip(0, 255).astype("uint8")


def mediapipe_image(pixels):
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels))


@pytest.fixture(scope="module")
def xs_classifier():
    """XS with a fixed seed and its head drawn with large weights: random features give
    logits a few tenths apart, where float rounding or int8 could swap near-tied classes; a
    head 30x larger spreads them over tens of units, so top-1 is decided and the softmax is
    peaked (its uint8 form then sums to 1 within a few 1/256 steps)."""
    model = randomise_weights(SwiftFormerXS(), seed=11)
    rng = np.random.RandomState(11)
    for name in ("head", "dist_head"):
        layer = model.get_layer(name)
        layer.kernel.assign(rng.normal(0, 30 / np.sqrt(layer.kernel.shape[0]), layer.kernel.shape).astype("float32"))
    return model


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_image_classifier_runs_the_exported_file(tmp_path, xs_classifier, quantization):
    pixels = crops(224)
    # Keras on the same 224x224 images (MediaPipe resizes to the input size: here no resize).
    expected = softmax(to_numpy(xs_classifier(preprocess_input(pixels.astype("float32")), training=False)))
    calibration = np.concatenate([pixels, pixels[:, :, ::-1]]).astype("float32") if quantization == "int8" else None
    path = tmp_path / f"xs_{quantization}.tflite"
    result = export_tflite(xs_classifier, path, quantization=quantization, representative_data=calibration)
    # The defaults a phone wants: pixels in, probabilities out, uint8 for int8 (scale 1, zero 0:
    # MediaPipe feeds the image's bytes as they are).
    assert result["include_preprocessing"] and result["probabilities"]
    (inputs,), (outputs,) = result["io"]["inputs"], result["io"]["outputs"]
    if quantization == "int8":
        assert inputs["dtype"] == outputs["dtype"] == "uint8"
        assert (inputs["scale"], inputs["zero_point"]) == (1.0, 0)
    content = path.read_bytes()
    assert associated_files(content)["labels.txt"].decode().splitlines() == IMAGENET_NAMES
    metadata = schema.ModelMetadata.GetRootAs(read_metadata(content), 0)
    image = metadata.SubgraphMetadata(0).InputTensorMetadata(0)
    assert image.Content().ContentPropertiesType() == schema.ContentProperties.ImageProperties
    options = vision.ImageClassifierOptions(base_options=mp.tasks.BaseOptions(model_asset_path=str(path)))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for photo, keras_scores in zip(pixels, expected):
            categories = classifier.classify(mediapipe_image(photo)).classifications[0].categories
            assert len(categories) == 1000
            assert all(c.category_name == IMAGENET_NAMES[c.index] for c in categories)
            assert sum(c.score for c in categories) == pytest.approx(1.0, abs=0.05)
            assert categories[0].index == int(keras_scores.argmax())  # sorted by score
            assert categories[0].score == pytest.approx(float(keras_scores.max()), abs=0.02)
    # `verify` compares like with like: the file's probabilities with Keras' softmax.
    report = verify(path, xs_classifier, pixels.astype("float32"), repeats=1)
    assert report["probabilities"] and report["top1_agreement"] == 1.0
    assert report["max_abs_diff"] <= (1e-4 if quantization == "float32" else 0.02)


def test_image_segmenter_runs_the_exported_file(tmp_path):
    names = ["background", "disk", "square"]
    keras.utils.set_random_seed(3)
    model = SwiftFormerSegmenter(num_classes=3, backbone_weights=None, input_shape=(64, 64, 3),
                                 depths=TINY["depths"], widths=TINY["widths"], fpn_channels=32,
                                 head_channels=32, norm_groups=8, drop_path_rate=0.0)
    model = randomise_weights(model, seed=3)
    pixels = crops(64)
    expected = to_numpy(model(preprocess_input(pixels.astype("float32")), training=False)).argmax(-1)
    assert len(np.unique(expected)) >= 2  # the masks hold more than one class to agree on
    path = tmp_path / "segmenter.tflite"
    export_tflite(model, path, class_names=names)
    options = vision.ImageSegmenterOptions(base_options=mp.tasks.BaseOptions(model_asset_path=str(path)),
                                           output_category_mask=True, output_confidence_masks=True)
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.labels == names
        for photo, keras_mask in zip(pixels, expected):
            result = segmenter.segment(mediapipe_image(photo))
            mask = result.category_mask.numpy_view().reshape(keras_mask.shape)
            agreement = np.mean(mask == keras_mask)
            print(f"pixel agreement with Keras: {agreement:.4f}")
            assert agreement >= 0.95
            confidences = np.stack([m.numpy_view().reshape(keras_mask.shape) for m in result.confidence_masks], -1)
            np.testing.assert_allclose(confidences.sum(-1), 1.0, atol=1e-3)  # the declared softmax
    assert sorted(os.listdir(tmp_path)) == ["segmenter.json", "segmenter.labels.txt", "segmenter.tflite"]
