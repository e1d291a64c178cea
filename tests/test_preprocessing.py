"""Preprocessing as the official evaluation does it, and decoding predictions."""

import numpy as np
import pytest
from helpers import optional, to_numpy

from keras_swiftformer.preprocessing import (
    decode_predictions,
    imagenet_classes,
    load_image,
    preprocess_input,
    resize_and_center_crop,
)

MEAN = np.array([0.485, 0.456, 0.406], "float32")
STD = np.array([0.229, 0.224, 0.225], "float32")
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")  # CC0 / public-domain photographs
ONE_LEVEL = 1.0 / 255.0 / STD.min()  # one uint8 step after normalisation


def _official_transform(image, size):
    """torchvision's Resize(int(256/224*size), BICUBIC) + CenterCrop(size) + ToTensor +
    Normalize on a PIL image, transcribed step by step (torchvision is not installable here)."""
    from PIL import Image

    pil = Image.fromarray(image)
    short = int((256 / 224) * size)
    w, h = pil.size
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_h, new_w = short, int(short * w / h)
    pil = pil.resize((new_w, new_h), Image.BICUBIC)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    pil = pil.crop((left, top, left + size, top + size))
    return (np.asarray(pil, "float32") / 255.0 - MEAN) / STD


@pytest.fixture(scope="module")
def photos():
    data = optional("skimage.data")
    optional("PIL")
    return {name: getattr(data, name)() for name in PHOTOS}


def test_preprocess_input():
    pixels = np.random.RandomState(0).randint(0, 256, (2, 5, 7, 3)).astype("uint8")
    expected = (pixels / 255.0 - MEAN) / STD
    np.testing.assert_allclose(preprocess_input(pixels), expected, atol=1e-5)
    import keras

    tensor = keras.ops.convert_to_tensor(pixels.astype("float32"))
    np.testing.assert_allclose(to_numpy(preprocess_input(tensor)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="3 channels last"):
        preprocess_input(np.zeros((2, 3, 4, 4)))


@pytest.mark.parametrize("size", [224, 288])
def test_load_image_is_the_official_evaluation_transform(photos, size):
    for name, image in photos.items():
        np.testing.assert_allclose(load_image(image, size), _official_transform(image, size), atol=1e-5, err_msg=name)


def test_load_image_from_a_file(tmp_path, photos):
    from PIL import Image

    path = tmp_path / "cat.png"
    Image.fromarray(photos["chelsea"]).save(path)
    np.testing.assert_allclose(load_image(str(path)), _official_transform(photos["chelsea"], 224), atol=1e-5)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="Could not read .*broken.jpg as an image"):
        load_image(str(broken))


def test_backend_resize_is_close_to_pillow(photos):
    """`resize_and_center_crop` runs in any backend's graph but is not Pillow: most pixels are
    identical, 99% within one uint8 level, the worst at high-contrast edges within ~14 levels."""
    for name, image in photos.items():
        for size in (224, 288):
            exact = load_image(image, size)
            approx = preprocess_input(to_numpy(resize_and_center_crop(image.astype("float32"), size)))
            diff = np.abs(exact - approx)
            assert (diff < 1e-5).mean() >= 0.75, name
            assert np.percentile(diff, 99) <= ONE_LEVEL + 1e-4, name
            assert diff.max() <= 0.25, (name, diff.max())


def test_decode_predictions():
    import keras_swiftformer

    assert keras_swiftformer.decode_predictions is decode_predictions
    assert keras_swiftformer.preprocess_input is preprocess_input
    classes = imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    assert classes[281] == ("n02123045", "tabby, tabby cat")
    logits = np.zeros((2, 1000), "float32")
    logits[0, [281, 285, 1]] = [5.0, 4.0, 3.0]
    logits[1, 999] = 1.0
    decoded = decode_predictions(logits, top=3)
    assert [row[1] for row in decoded[0]] == ["tabby", "Egyptian cat", "goldfish"]
    # Logits in, probabilities out (what the README's `decode_predictions(model.predict(x))`
    # shows a user); probabilities in, the same probabilities out.
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert decoded[0][0][:2] == ("n02123045", "tabby") and decoded[0][0][2] == pytest.approx(expected[281])
    assert decoded[1][0][0] == classes[999][0]
    assert decode_predictions(expected[None], top=1)[0][0][2] == pytest.approx(expected[281])
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\).*class_names=read_metadata"):
        decode_predictions(np.zeros((2, 10)))
    # A fine-tuned model's own names: (index, name, probability), softmaxed as above.
    own = decode_predictions(np.array([[0.0, 2.0, 1.0]]), top=2, class_names=["cat", "dog", "fox"])[0]
    assert [(index, name) for index, name, _ in own] == [(1, "dog"), (2, "fox")]
    assert own[0][2] == pytest.approx(np.exp(2) / (1 + np.exp(1) + np.exp(2)))
    with pytest.raises(ValueError, match=r"shape \(samples, 2\): one column per name"):
        decode_predictions(np.zeros((1, 3)), class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="`top` must be between 1 and 3"):
        decode_predictions(np.zeros((1, 3)), top=4, class_names=["cat", "dog", "fox"])
    with pytest.raises(ValueError, match="`top` must be between 1 and 1000"):
        decode_predictions(logits, top=0)
