"""The batched training augmentation against timm's semantics: every RandAugment operation
against Pillow (timm's operations are Pillow's) on real photographs, timm's magnitude rules
and random draws, random erasing, MixUp/CutMix labels, and seeded determinism of the pipeline.
Only TensorFlow (tf.data) is involved, whatever the Keras backend."""

import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

tf = pytest.importorskip("tensorflow")
skimage_data = pytest.importorskip("skimage.data")

from keras_swiftformer.training import augment  # noqa: E402
from keras_swiftformer.training.data import (  # noqa: E402
    Augmentation,
    decode_random_resized_crop,
    folder_datasets,
    make_pipeline,
    random_resized_crop,
)

pytestmark = pytest.mark.any_backend

SIZE = 160


@pytest.fixture(scope="module")
def photographs():
    """astronaut, chelsea, coffee at SIZE x SIZE, uint8."""
    return np.stack([
        np.asarray(Image.fromarray(photo).resize((SIZE, SIZE), Image.BICUBIC))
        for photo in (skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee())
    ])


def _solarize_add(image, addition, threshold=128):
    table = [min(255, value + addition) if value < threshold else value for value in range(256)]
    return image.point(table * 3)


# timm's operations (timm/data/auto_augment.py), as Pillow calls.
PILLOW_COLOUR_OPS = {
    "AutoContrast": lambda image, _: ImageOps.autocontrast(image),
    "Equalize": lambda image, _: ImageOps.equalize(image),
    "Invert": lambda image, _: ImageOps.invert(image),
    "PosterizeIncreasing": lambda image, bits: ImageOps.posterize(image, int(bits)),
    "SolarizeIncreasing": lambda image, threshold: ImageOps.solarize(image, int(threshold)),
    "SolarizeAdd": lambda image, addition: _solarize_add(image, int(addition)),
    "ColorIncreasing": lambda image, factor: ImageEnhance.Color(image).enhance(factor),
    "ContrastIncreasing": lambda image, factor: ImageEnhance.Contrast(image).enhance(factor),
    "BrightnessIncreasing": lambda image, factor: ImageEnhance.Brightness(image).enhance(factor),
    "SharpnessIncreasing": lambda image, factor: ImageEnhance.Sharpness(image).enhance(factor),
}


def _pillow_affine(image, matrix):
    return image.transform(image.size, Image.AFFINE, matrix, resample=Image.BILINEAR,
                           fillcolor=tuple(int(v) for v in augment.FILL_COLOUR))


PILLOW_GEOMETRIC_OPS = {
    "Rotate": lambda image, degrees: image.rotate(degrees, resample=Image.BILINEAR,
                                                  fillcolor=tuple(int(v) for v in augment.FILL_COLOUR)),
    "ShearX": lambda image, factor: _pillow_affine(image, (1, factor, 0, 0, 1, 0)),
    "ShearY": lambda image, factor: _pillow_affine(image, (1, 0, 0, factor, 1, 0)),
    "TranslateXRel": lambda image, pct: _pillow_affine(image, (1, 0, pct * image.size[0], 0, 1, 0)),
    "TranslateYRel": lambda image, pct: _pillow_affine(image, (1, 0, 0, 0, 1, pct * image.size[1])),
}


def _both_ways(photographs, name, magnitude, sign, pillow_op):
    count = len(photographs)
    magnitudes, signs = tf.fill([count], magnitude), tf.fill([count], sign)
    argument = float(augment.op_argument(name, magnitudes, signs)[0])
    ours = augment.apply_op(tf.constant(photographs, tf.float32), name, magnitudes, signs).numpy()
    theirs = np.stack([np.asarray(pillow_op(Image.fromarray(p), argument)) for p in photographs])
    return ours, theirs.astype("float32")


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("magnitude", [3.0, 9.0])
@pytest.mark.parametrize("name", list(PILLOW_COLOUR_OPS))
def test_colour_op_matches_pillow(photographs, name, magnitude, sign):
    ours, theirs = _both_ways(photographs, name, magnitude, sign, PILLOW_COLOUR_OPS[name])
    difference = np.abs(ours - theirs)
    if name == "AutoContrast":
        # Pillow computes its stretch in double precision, we in float32: a value exactly on
        # an integer may round the other way.
        assert difference.max() <= 1 and np.mean(difference > 0) < 0.02
    else:
        np.testing.assert_array_equal(ours, theirs)
    if name != "AutoContrast":  # (the photographs' channels mostly span 0..255 already)
        assert np.abs(ours - photographs).mean() > 0.5  # the op changed the images


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("name", list(PILLOW_GEOMETRIC_OPS))
def test_geometric_op_matches_pillow_bilinear(photographs, name, sign):
    """Against Pillow's bilinear transform (ours interpolates bilinearly, see the module
    docstring): equal but for rounding, except along the source's border, where Pillow clamps
    the neighbours and TensorFlow blends with the fill colour."""
    ours, theirs = _both_ways(photographs, name, 9.0, sign, PILLOW_GEOMETRIC_OPS[name])
    difference = np.abs(ours - theirs)
    assert difference.mean() < 1.0
    assert np.mean(difference > 2) < 0.02
    assert np.abs(ours - photographs).mean() > 10  # it moved the image


def _timm_argument(name, magnitude, negate):
    """timm's level-to-argument functions for the 'inc1' ops (a plain-Python copy)."""
    level = magnitude / 10.0
    sign = -1.0 if negate else 1.0
    rules = {
        "Rotate": lambda: sign * level * 30.0,
        "PosterizeIncreasing": lambda: 4 - int(level * 4),
        "SolarizeIncreasing": lambda: 256 - min(256, int(level * 256)),
        "SolarizeAdd": lambda: min(128, int(level * 110)),
        "ShearX": lambda: sign * level * 0.3,
        "ShearY": lambda: sign * level * 0.3,
        "TranslateXRel": lambda: sign * level * 0.45,
        "TranslateYRel": lambda: sign * level * 0.45,
    }
    if name.endswith("Increasing") and name not in rules:
        return max(0.1, 1.0 + sign * level * 0.9)
    return rules.get(name, lambda: 0.0)()


@pytest.mark.parametrize("name", augment.RAND_AUGMENT_OPS)
def test_op_arguments_follow_timm(name):
    magnitudes = [0.0, 2.4, 4.5, 7.6, 9.0, 10.0]
    for negate in (False, True):
        ours = augment.op_argument(
            name, tf.constant(magnitudes), tf.fill([len(magnitudes)], -1.0 if negate else 1.0)
        ).numpy()
        expected = [_timm_argument(name, m, negate) for m in magnitudes]
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


def test_rand_augment_draws_two_ops_per_image_with_timms_distributions():
    draws = {k: v.numpy() for k, v in augment.sample_rand_augment(tf.constant([3, 7]), 4000).items()}
    assert draws["ops"].shape == (2, 4000)
    counts = np.bincount(draws["ops"].ravel(), minlength=15)
    assert counts.min() > 0.8 * 8000 / 15 and counts.max() < 1.2 * 8000 / 15  # uniform over 15
    assert len({tuple(pair) for pair in draws["ops"].T}) > 150  # images get different pairs
    assert 0.47 < draws["applied"].mean() < 0.53  # each op with probability 0.5
    magnitude = draws["magnitude"]
    assert magnitude.min() >= 0.0 and magnitude.max() <= 10.0
    assert abs(magnitude.mean() - 9.0) < 0.03 and abs(magnitude.std() - 0.5) < 0.03
    assert 0.47 < np.mean(draws["sign"] < 0) < 0.53


def test_rand_augment_gives_each_image_its_own_ops(photographs):
    """The batched layer (images partitioned by op) equals applying each image's own drawn ops
    one image at a time; outputs are whole values in [0, 255]."""
    images = tf.constant(np.concatenate([photographs] * 4), tf.float32)  # 12 images
    seed = tf.constant([5, 11])
    ours = augment.rand_augment(images, seed).numpy()
    draws = augment.sample_rand_augment(seed, 12)
    expected = []
    for index in range(12):
        image = images[index : index + 1]
        for layer in range(2):
            if bool(draws["applied"][layer, index]):
                name = augment.RAND_AUGMENT_OPS[int(draws["ops"][layer, index])]
                image = augment.apply_op(image, name, draws["magnitude"][layer, index : index + 1],
                                         draws["sign"][layer, index : index + 1])
        expected.append(image.numpy()[0])
    np.testing.assert_array_equal(ours, np.stack(expected))
    assert len({tuple(pair) for pair in draws["ops"].numpy().T}) > 6
    changed = np.abs(ours - images.numpy()).reshape(12, -1).mean(axis=1) > 0.5
    assert 2 <= changed.sum() <= 11  # some images changed, and not all the same way


def test_rand_augment_keeps_whole_values_in_range(photographs):
    images = tf.constant(np.concatenate([photographs] * 6), tf.float32)
    for seed in range(8):
        out = augment.rand_augment(images, tf.constant([seed, 1])).numpy()
        assert out.min() >= 0.0 and out.max() <= 255.0
        np.testing.assert_array_equal(out, np.round(out))


def _one_hot(labels, classes):
    return np.eye(classes, dtype="float32")[labels]


def test_mixup_mixes_with_the_mirrored_batch(photographs):
    images = np.concatenate([photographs, photographs[::-1, ::-1]]).astype("float32") / 255.0
    labels = _one_hot([0, 1, 2, 3, 4, 5], 6)
    for seed in range(5):
        mixed, mixed_labels = (t.numpy() for t in augment.mix_batch(
            tf.constant(images), tf.constant(labels), tf.constant([seed, 2]), mixup_alpha=0.8, cutmix_alpha=0.0))
        np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
        lam = mixed_labels[0, 0]
        np.testing.assert_allclose(mixed_labels, lam * labels + (1 - lam) * labels[::-1], atol=1e-6)
        np.testing.assert_allclose(mixed, lam * images + (1 - lam) * images[::-1], atol=1e-5)


def test_cutmix_pastes_one_box_and_labels_its_area(photographs):
    images = np.concatenate([photographs, photographs[:, ::-1]]).astype("float32")
    labels = _one_hot([0, 1, 2, 3, 4, 5], 6)
    height, width = images.shape[1:3]
    for seed in range(6):
        mixed, mixed_labels = (t.numpy() for t in augment.mix_batch(
            tf.constant(images), tf.constant(labels), tf.constant([seed, 3]), mixup_alpha=0.0, cutmix_alpha=1.0))
        np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
        pasted = np.any(mixed[0] != images[0], axis=-1)
        rows, columns = np.where(pasted)
        if rows.size:
            box = (slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1))
            np.testing.assert_array_equal(mixed[:, box[0], box[1]], images[::-1, box[0], box[1]])
            box_area = (rows.max() + 1 - rows.min()) * (columns.max() + 1 - columns.min())
        else:
            box_area = 0
        lam = 1.0 - box_area / (height * width)
        np.testing.assert_allclose(mixed_labels[0], lam * labels[0] + (1 - lam) * labels[-1], atol=1e-6)


def test_mixup_or_cutmix_per_batch_half_the_time():
    images = tf.constant(np.random.RandomState(0).uniform(0, 1, (4, 16, 16, 3)).astype("float32"))
    labels = tf.constant(_one_hot([0, 1, 2, 3], 4))
    cutmix = 0
    for seed in range(200):
        mixed, _ = augment.mix_batch(images, labels, tf.constant([seed, 4]))
        # CutMix leaves pixels as they were (outside the box); MixUp changes all but by chance.
        cutmix += bool(np.any(mixed.numpy() == images.numpy()))
    assert 70 < cutmix < 130


def test_label_smoothing_in_the_loss_gives_timms_mixed_targets():
    """The pipeline leaves smoothing to the loss; Keras' smoothing of the mixed one-hot labels
    equals timm's mixup_target (smoothed one-hots, then mixed)."""
    import keras

    classes, smoothing, lam = 5, 0.1, 0.3
    target = np.array([0, 3, 1, 4])
    logits = np.random.RandomState(1).normal(size=(4, classes)).astype("float32")
    mixed = lam * _one_hot(target, classes) + (1 - lam) * _one_hot(target[::-1], classes)
    ours = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing, reduction=None)
    off = smoothing / classes
    on = 1.0 - smoothing + off
    timm_target = lam * np.where(_one_hot(target, classes) > 0, on, off) + (1 - lam) * np.where(
        _one_hot(target[::-1], classes) > 0, on, off)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -(timm_target * log_softmax).sum(axis=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(mixed, logits)), expected, rtol=1e-5)


def test_random_erasing_boxes_and_noise():
    count, height, width = 64, 96, 128
    images = np.full((count, height, width, 3), 7.0, "float32")  # no normalised image is 7
    erased = augment.random_erasing(tf.constant(images), tf.constant([1, 9]), probability=1.0).numpy()
    noise = []
    for image in erased:
        inside = np.any(image != 7.0, axis=-1)
        rows, columns = np.where(inside)
        box_height, box_width = rows.max() + 1 - rows.min(), columns.max() + 1 - columns.min()
        assert inside.sum() == box_height * box_width  # one rectangle
        assert 0.02 * 0.9 <= box_height * box_width / (height * width) <= 1 / 3 * 1.1
        assert 0.3 * 0.8 <= box_height / box_width <= 1 / 0.3 * 1.2
        noise.append(image[inside])
    noise = np.concatenate(noise)
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1.0) < 0.02  # per-pixel N(0, 1)
    sometimes = augment.random_erasing(tf.constant(np.full((400, 24, 24, 3), 7.0, "float32")),
                                       tf.constant([2, 9]), probability=0.25).numpy()
    assert 0.18 < np.mean(np.any(sometimes != 7.0, axis=(1, 2, 3))) < 0.32
    # A batch with no image erased (common at 0.25 and small batches) passes unchanged.
    untouched = augment.random_erasing(tf.constant(images[:4]), tf.constant([3, 9]), probability=0.0).numpy()
    np.testing.assert_array_equal(untouched, images[:4])


def test_jpeg_crop_decoding_matches_decoding_the_whole_file(tmp_path):
    path = str(tmp_path / "coffee.jpg")
    Image.fromarray(skimage_data.coffee()).save(path, quality=90)
    contents = tf.io.read_file(path)
    whole = tf.cast(tf.io.decode_image(contents, channels=3), tf.float32)
    for seed in range(4):
        item_seed = tf.constant([seed, 5])
        ours = decode_random_resized_crop(contents, 64, item_seed).numpy()
        theirs = random_resized_crop(whole, 64, item_seed).numpy()
        # libjpeg upsamples the chroma of a cropped decode at the crop's edge on its own.
        assert np.abs(ours - theirs).mean() < 0.5


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.RandomState(0)
    for name in ("astronaut", "chelsea", "coffee"):
        photo = getattr(skimage_data, name)()
        (folder / name).mkdir()
        for index in range(6):
            top, left = rng.randint(0, photo.shape[0] - 200), rng.randint(0, photo.shape[1] - 200)
            suffix = ".png" if index == 0 else ".jpg"  # the undecoded-crop path and the other
            Image.fromarray(photo[top : top + 200, left : left + 200]).save(folder / name / f"{index}{suffix}")
    return str(folder)


def _batches(split, **kwargs):
    dataset = make_pipeline(split, 3, 64, 4, training=True, augmentation=Augmentation(), **kwargs)
    return [(images.numpy(), labels.numpy()) for images, labels in dataset]


def test_pipeline_is_seeded_and_resumes_with_the_same_batches(photo_folder):
    train, _ = folder_datasets(photo_folder, validation_split=0.2, seed=0)
    full = _batches(train, seed=4, epochs=2)
    again = _batches(train, seed=4, epochs=2)
    resumed = _batches(train, seed=4, start_epoch=1, epochs=2)
    other_seed = _batches(train, seed=5, epochs=2)
    per_epoch = train.size // 4
    assert len(full) == 2 * per_epoch
    for (images, labels), (images_again, labels_again) in zip(full, again):
        np.testing.assert_array_equal(images, images_again)
        np.testing.assert_array_equal(labels, labels_again)
    for (images, labels), (images_resumed, labels_resumed) in zip(full[per_epoch:], resumed):
        np.testing.assert_array_equal(images, images_resumed)
        np.testing.assert_array_equal(labels, labels_resumed)
    assert not np.array_equal(full[0][0], other_seed[0][0])
    assert not np.array_equal(full[0][0], full[per_epoch][0])  # epochs differ
    for _, labels in full:
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    # Some mixing happened (MixUp/CutMix on every batch, as timm's prob=1.0).
    assert any(np.count_nonzero(labels[0]) == 2 for _, labels in full)


def test_rand_augment_seed_determines_the_output(photographs):
    images = tf.constant(photographs, tf.float32)
    first = augment.rand_augment(images, tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(first, augment.rand_augment(images, tf.constant([1, 2])).numpy())
    others = [augment.rand_augment(images, tf.constant([seed, 2])).numpy() for seed in range(2, 6)]
    assert any(not np.array_equal(first, other) for other in others)


def test_geometric_matrices_are_pillows_rotation():
    """Image.rotate's matrix (timm's own copy of it for old Pillow): rotation about the
    centre, counter-clockwise for positive degrees."""
    degrees, width, height = 30.0, 8.0, 6.0
    matrix = augment.geometric_matrices(tf.constant([0]), tf.constant([degrees]), height, width).numpy()[0]
    angle = -math.radians(degrees)
    a, b, d, e = math.cos(angle), math.sin(angle), -math.sin(angle), math.cos(angle)
    centre = (width / 2, height / 2)
    c = a * -centre[0] + b * -centre[1] + centre[0]
    f = d * -centre[0] + e * -centre[1] + centre[1]
    np.testing.assert_allclose(matrix, [a, b, c, d, e, f], rtol=1e-5, atol=1e-5)
