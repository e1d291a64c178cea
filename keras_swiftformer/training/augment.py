"""The official SwiftFormer training augmentation, vectorised over batches in TensorFlow.

The official repository trains with timm's
`create_transform(..., auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic",
re_prob=0.25, re_mode="pixel", re_count=1)` and
`Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode="batch",
label_smoothing=0.1)`. This module reproduces timm's semantics (`timm/data/auto_augment.py`,
`random_erasing.py`, `mixup.py`) on whole batches inside `tf.data`, with stateless seeds:

* `rand_augment`: for every image, 2 operations drawn uniformly (with replacement) from
  timm's 15 "increasing" RandAugment operations, each applied with probability 0.5 at its own
  magnitude drawn from N(9, 0.5) clipped to [0, 10], with its own random sign where timm
  negates. The images of a batch are partitioned by the operation they drew and each
  operation runs once on its part, so every image does the work of its own operations only.
  Every operation returns whole numbers in [0, 255], as Pillow's 8-bit images do, with
  Pillow's rounding (the colour blends truncate, as `Image.blend` does).
* `random_erasing`: timm's RandomErasing in 'pixel' mode on normalised images: with the given
  probability, one rectangle (area 2%..1/3, log-uniform aspect 0.3..3.3, first of 10
  attempts that fits) filled with per-pixel N(0, 1) noise.
* `mix_batch`: timm's Mixup in 'batch' mode: one lambda per batch, CutMix instead of MixUp
  with probability `switch_prob`, each image mixed with the batch's mirror image (the batch
  reversed), the CutMix lambda corrected to the clipped box's area.

Simplifications, against timm:

* the geometric operations (Rotate, ShearX/Y, TranslateX/YRel) interpolate bilinearly
  (`ImageProjectiveTransformV3` has no bicubic), where timm's Pillow transforms use bicubic;
  pixels that land outside the source take timm's fill colour, the ImageNet mean.
* label smoothing is not applied here: the training loss (Keras' CategoricalCrossentropy with
  `label_smoothing`) applies it, which gives timm's smoothed mixed targets exactly because
  smoothing is linear in the target.
"""

import math

from keras_swiftformer.optional import require

tf = require("tensorflow", "the training augmentation (tf.data)")

# timm's `_RAND_INCREASING_TRANSFORMS` ('inc1'), in timm's order.
RAND_AUGMENT_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
    "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
    "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
GEOMETRIC_OPS = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
LEVEL_DENOMINATOR = 10.0  # timm's _LEVEL_DENOM: magnitude 10 is the strongest level
# timm's `img_mean` hyper-parameter: the fill colour of the geometric operations.
FILL_COLOUR = (124.0, 116.0, 104.0)  # round(255 * (0.485, 0.456, 0.406))
TRANSLATE_FRACTION = 0.45  # timm's translate_pct default


def _seeds(seed, count):
    """`count` independent stateless seeds from one."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), count)


# Speed: TensorFlow's CPU kernels broadcast a [n, 1, 1, 1] operand (one value per image) fast,
# but a per-channel one ([3] or [n, 1, 1, 3]) several times slower than the operation itself,
# and `tf.where` on whole images costs ten multiplications. So per-channel values are applied
# to images viewed as rows of width * 3 values, and selections are written as arithmetic.


def _per_image(values):
    """A per-image vector shaped to broadcast over [n, height, width, channels]."""
    return tf.reshape(tf.cast(values, tf.float32), [-1, 1, 1, 1])


def scale_and_shift_channels(images, scale, shift):
    """`images * scale + shift` for per-channel `scale`, `shift` ([3], or [n, 3] per image) on
    images [..., height, width, 3], through rows of width * 3 values."""
    shape = tf.shape(images)
    width = shape[-2]
    per_image = len(scale.shape) == 2
    rows = tf.reshape(images, [shape[0], -1, width * 3] if per_image else [-1, width * 3])
    scale = tf.tile(scale, [1, width] if per_image else [width])
    shift = tf.tile(shift, [1, width] if per_image else [width])
    if per_image:
        scale, shift = scale[:, None, :], shift[:, None, :]
    return tf.reshape(rows * scale + shift, shape)


# ------------------------------------------------------------ operations (Pillow's semantics)


def auto_contrast(images):
    """`ImageOps.autocontrast`: each channel stretched to 0..255 (int() of the linear map)."""
    low = tf.reduce_min(images, axis=[1, 2])
    high = tf.reduce_max(images, axis=[1, 2])
    flat = high <= low  # Pillow leaves a single-valued channel as it is: scale 1, shift 0
    scale = tf.where(flat, 1.0, 255.0 / tf.where(flat, 1.0, high - low))
    shift = tf.where(flat, 0.0, -low * scale)
    return tf.clip_by_value(tf.floor(scale_and_shift_channels(images, scale, shift)), 0.0, 255.0)


def equalize(images):
    """`ImageOps.equalize`: per channel, Pillow's histogram lookup table, from one batched
    histogram (a bincount over image, channel and value)."""
    count = tf.shape(images)[0]
    values = tf.cast(images, tf.int32)
    # One histogram bin per (image, channel, value).
    bins = values + 256 * (tf.range(3)[None, None, None, :] + 3 * tf.range(count)[:, None, None, None])
    histogram = tf.reshape(
        tf.math.bincount(tf.reshape(bins, [-1]), minlength=count * 768, maxlength=count * 768),
        [count, 3, 256],
    )
    present = histogram > 0
    # Pillow: step = (pixels - pixels in the highest occupied value) // 255.
    highest = 255 - tf.argmax(tf.cast(tf.reverse(present, axis=[-1]), tf.int32), axis=-1, output_type=tf.int32)
    in_highest = tf.gather(histogram, highest, batch_dims=2)
    step = (tf.reduce_sum(histogram, axis=-1) - in_highest) // 255
    below = tf.cumsum(histogram, axis=-1, exclusive=True)
    safe_step = tf.maximum(step, 1)[..., None]
    table = tf.minimum((safe_step // 2 + below) // safe_step, 255)
    # A channel of one value, or with a step of 0, keeps its values.
    unchanged = (tf.reduce_sum(tf.cast(present, tf.int32), axis=-1) <= 1) | (step == 0)
    table = tf.where(unchanged[..., None], tf.range(256)[None, None, :], table)
    return tf.cast(tf.gather(tf.reshape(table, [-1]), bins), tf.float32)


def invert(images):
    return 255.0 - images


def posterize(images, bits):
    """`ImageOps.posterize`: keep the `bits` most significant bits (0 keeps none)."""
    step = _per_image(tf.pow(2.0, 8.0 - tf.cast(bits, tf.float32)))
    return tf.floor(images / step) * step


def solarize(images, threshold):
    """`ImageOps.solarize`: values at or above `threshold` inverted."""
    inverted = tf.cast(images >= _per_image(threshold), tf.float32)
    return images + inverted * (255.0 - 2.0 * images)


def solarize_add(images, addition, threshold=128.0):
    """timm's solarize_add: `addition` added to values below `threshold`, capped at 255."""
    below = tf.cast(images < threshold, tf.float32)
    return tf.minimum(images + below * _per_image(addition), 255.0)


def _blend(degenerate, images, factor):
    """`Image.blend(degenerate, images, factor)`: extrapolates for factor > 1, clips, and
    truncates to 8 bits."""
    blended = degenerate + _per_image(factor) * (images - degenerate)
    return tf.floor(tf.clip_by_value(blended, 0.0, 255.0))


def grayscale(images):
    """Pillow's RGB to L conversion (ITU-R 601-2 luma in 16-bit fixed point, rounded)."""
    red, green, blue = tf.unstack(images, axis=-1)
    return tf.floor((red * 19595.0 + green * 38470.0 + blue * 7471.0 + 32768.0) / 65536.0)[..., None]


def color(images, factor):
    """`ImageEnhance.Color`: blend with the image's grey version."""
    return _blend(tf.tile(grayscale(images), [1, 1, 1, 3]), images, factor)


def contrast(images, factor):
    """`ImageEnhance.Contrast`: blend with the grey of the image's mean luma (rounded)."""
    mean = tf.floor(tf.reduce_mean(grayscale(images), axis=[1, 2, 3], keepdims=True) + 0.5)
    return _blend(mean, images, factor)


def brightness(images, factor):
    """`ImageEnhance.Brightness`: blend with black."""
    return _blend(tf.zeros_like(images), images, factor)


def sharpness(images, factor):
    """`ImageEnhance.Sharpness`: blend with `ImageFilter.SMOOTH` (3x3 kernel 1 1 1 / 1 5 1 /
    1 1 1 over 13, rounded); Pillow leaves the one-pixel border unfiltered, so the border
    keeps its values."""
    centre = images[:, 1:-1, 1:-1]
    rows = images[:, :-2] + images[:, 1:-1] + images[:, 2:]
    box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]  # sums of 3x3 neighbourhoods
    smooth = tf.round((box + 4.0 * centre) / 13.0)
    inside = _blend(smooth, centre, factor)
    middle = tf.concat([images[:, 1:-1, :1], inside, images[:, 1:-1, -1:]], axis=2)
    return tf.concat([images[:, :1], middle, images[:, -1:]], axis=1)


def affine(images, matrices):
    """Pillow's `Image.transform(size, AFFINE, matrix)` for a batch: `matrices` [n, 6] are
    Pillow's (a, b, c, d, e, f), mapping an output point (x, y) to the input point
    (a x + b y + c, d x + e y + f) in pixel-corner coordinates. Bilinear; outside the source,
    timm's fill colour."""
    a, b, c, d, e, f = tf.unstack(tf.cast(matrices, tf.float32), axis=1)
    # Pillow samples at pixel centres (x + 0.5); TensorFlow's coordinates are the centres.
    c = 0.5 * a + 0.5 * b + c - 0.5
    f = 0.5 * d + 0.5 * e + f - 0.5
    zeros = tf.zeros_like(a)
    transforms = tf.stack([a, b, c, d, e, f, zeros, zeros], axis=1)
    fill, ones = tf.constant(FILL_COLOUR), tf.ones([3])
    # Shifted so that the transform's constant fill of 0 is the fill colour.
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=scale_and_shift_channels(images, ones, -fill), transforms=transforms,
        output_shape=tf.shape(images)[1:3], fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )
    return tf.clip_by_value(tf.round(scale_and_shift_channels(moved, ones, fill)), 0.0, 255.0)


def geometric_matrices(ops, arguments, height, width):
    """Pillow's affine matrices [n, 6] of the geometric operations named by `ops` (indices in
    GEOMETRIC_OPS) with their timm arguments (degrees, shear factor, translation fraction)."""
    ones, zeros = tf.ones_like(arguments), tf.zeros_like(arguments)
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    # Image.rotate(degrees): counter-clockwise about the centre (w / 2, h / 2).
    angle = -arguments * (math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    centre_x, centre_y = width / 2.0, height / 2.0
    rotate = [cos, sin, centre_x - cos * centre_x - sin * centre_y,
              -sin, cos, centre_y + sin * centre_x - cos * centre_y]
    candidates = tf.stack([
        tf.stack(rotate, axis=1),
        tf.stack([ones, arguments, zeros, zeros, ones, zeros], axis=1),  # ShearX
        tf.stack([ones, zeros, zeros, arguments, ones, zeros], axis=1),  # ShearY
        tf.stack([ones, zeros, arguments * width, zeros, ones, zeros], axis=1),  # TranslateXRel
        tf.stack([ones, zeros, zeros, zeros, ones, arguments * height], axis=1),  # TranslateYRel
    ], axis=1)
    return tf.gather(candidates, ops, batch_dims=1)


# ------------------------------------------------------------ timm's magnitude to argument


def op_argument(name, magnitude, sign):
    """timm's level-to-argument function of `name` ('inc1' variants), vectorised: `magnitude`
    in [0, 10], `sign` +-1 (timm's `_randomly_negate`, used where timm negates)."""
    level = magnitude / LEVEL_DENOMINATOR
    if name == "Rotate":
        return sign * level * 30.0
    if name == "PosterizeIncreasing":
        return 4.0 - tf.floor(level * 4.0)
    if name == "SolarizeIncreasing":
        return 256.0 - tf.minimum(256.0, tf.floor(level * 256.0))
    if name == "SolarizeAdd":
        return tf.minimum(128.0, tf.floor(level * 110.0))
    if name.endswith("Increasing"):  # Color, Contrast, Brightness, Sharpness: 1 +- 0.9 level
        return tf.maximum(0.1, 1.0 + sign * level * 0.9)
    if name in ("ShearX", "ShearY"):
        return sign * level * 0.3
    if name in ("TranslateXRel", "TranslateYRel"):
        return sign * level * TRANSLATE_FRACTION
    return tf.zeros_like(magnitude)  # AutoContrast, Equalize, Invert take none


_COLOUR_OPS = {
    "AutoContrast": lambda images, _: auto_contrast(images),
    "Equalize": lambda images, _: equalize(images),
    "Invert": lambda images, _: invert(images),
    "PosterizeIncreasing": posterize,
    "SolarizeIncreasing": solarize,
    "SolarizeAdd": solarize_add,
    "ColorIncreasing": color,
    "ContrastIncreasing": contrast,
    "BrightnessIncreasing": brightness,
    "SharpnessIncreasing": sharpness,
}


def apply_op(images, name, magnitude, sign):
    """One named operation on every image of `images`, at per-image magnitudes and signs."""
    argument = op_argument(name, tf.cast(magnitude, tf.float32), tf.cast(sign, tf.float32))
    if name in GEOMETRIC_OPS:
        ops = tf.fill(tf.shape(argument), GEOMETRIC_OPS.index(name))
        return affine(images, geometric_matrices(ops, argument, tf.shape(images)[1], tf.shape(images)[2]))
    return _COLOUR_OPS[name](images, argument)


# ------------------------------------------------------------ RandAugment


def sample_rand_augment(seed, batch_size, num_layers=2, magnitude=9.0, magnitude_std=0.5, probability=0.5):
    """timm's random draws of `rand-m{magnitude}-mstd{magnitude_std}-inc1` for a batch, each
    [num_layers, batch_size]: `ops` (indices in RAND_AUGMENT_OPS, with replacement as
    timm's `np.random.choice`), `applied` (each drawn op runs with `probability`),
    `magnitude` (N(magnitude, magnitude_std) clipped to [0, 10]) and `sign` (+-1)."""
    op_seed, apply_seed, magnitude_seed, sign_seed = tf.unstack(_seeds(seed, 4))
    shape = [num_layers, batch_size]
    ops = tf.random.stateless_uniform(shape, op_seed, 0, len(RAND_AUGMENT_OPS), dtype=tf.int32)
    applied = tf.random.stateless_uniform(shape, apply_seed) < probability
    drawn = magnitude + magnitude_std * tf.random.stateless_normal(shape, magnitude_seed)
    magnitudes = tf.clip_by_value(drawn, 0.0, LEVEL_DENOMINATOR)
    signs = tf.where(tf.random.stateless_uniform(shape, sign_seed) > 0.5, -1.0, 1.0)
    return {"ops": ops, "applied": applied, "magnitude": magnitudes, "sign": signs}


# Partitions of a layer: one per colour operation, one for all geometric operations (a single
# batched projective transform), one for the images whose drawn operation is skipped.
_COLOUR_NAMES = tuple(name for name in RAND_AUGMENT_OPS if name not in GEOMETRIC_OPS)
_GEOMETRIC_PART = len(_COLOUR_NAMES)
_SKIPPED_PART = _GEOMETRIC_PART + 1
_PART_OF_OP = [
    _GEOMETRIC_PART if name in GEOMETRIC_OPS else _COLOUR_NAMES.index(name) for name in RAND_AUGMENT_OPS
]
_GEOMETRIC_INDEX_OF_OP = [GEOMETRIC_OPS.index(name) if name in GEOMETRIC_OPS else 0 for name in RAND_AUGMENT_OPS]


def apply_layer(images, ops, applied, magnitude, sign):
    """One RandAugment layer: image i gets operation `ops[i]` (if `applied[i]`) at
    `magnitude[i]`, `sign[i]`. Images are grouped by operation and each group processed once,
    so a batch costs one operation per image, not every operation on every image."""
    count = tf.shape(images)[0]
    part = tf.where(applied, tf.gather(_PART_OF_OP, ops), _SKIPPED_PART)
    parts = _SKIPPED_PART + 1

    def split(values):
        return tf.dynamic_partition(values, part, parts)

    positions = split(tf.range(count))
    image_parts, magnitude_parts, sign_parts, op_parts = (split(v) for v in (images, magnitude, sign, ops))
    outputs = []
    for index, name in enumerate(_COLOUR_NAMES):
        argument = op_argument(name, magnitude_parts[index], sign_parts[index])
        outputs.append(_COLOUR_OPS[name](image_parts[index], argument))
    geometric = op_parts[_GEOMETRIC_PART]
    arguments = tf.zeros_like(magnitude_parts[_GEOMETRIC_PART])
    for name in GEOMETRIC_OPS:  # each image's argument by its own operation's rule
        own = tf.gather(_GEOMETRIC_INDEX_OF_OP, geometric) == GEOMETRIC_OPS.index(name)
        value = op_argument(name, magnitude_parts[_GEOMETRIC_PART], sign_parts[_GEOMETRIC_PART])
        arguments = tf.where(own, value, arguments)
    matrices = geometric_matrices(
        tf.gather(_GEOMETRIC_INDEX_OF_OP, geometric), arguments, tf.shape(images)[1], tf.shape(images)[2]
    )
    outputs.append(affine(image_parts[_GEOMETRIC_PART], matrices))
    outputs.append(image_parts[_SKIPPED_PART])
    result = tf.dynamic_stitch(positions, outputs)
    result.set_shape(images.shape)
    return result


def rand_augment(images, seed, num_layers=2, magnitude=9.0, magnitude_std=0.5, probability=0.5):
    """timm's `rand-m9-mstd0.5-inc1` on a batch of [0, 255] images (rounded to whole values
    first, as timm's 8-bit images are); returns whole values in [0, 255]."""
    draws = sample_rand_augment(seed, tf.shape(images)[0], num_layers, magnitude, magnitude_std, probability)
    images = tf.round(images)  # the crop is already clipped to [0, 255]
    for layer in range(num_layers):
        images = apply_layer(
            images, draws["ops"][layer], draws["applied"][layer], draws["magnitude"][layer], draws["sign"][layer]
        )
    return images


# ------------------------------------------------------------ random erasing


def erasing_boxes(seed, batch_size, height, width, probability, min_area=0.02, max_area=1 / 3,
                  min_aspect=0.3, attempts=10):
    """timm's RandomErasing boxes (count 1): per image (erased, top, left, box height, box
    width); an image is erased with `probability` if one of `attempts` boxes fits."""
    erase_seed, area_seed, aspect_seed, top_seed, left_seed = tf.unstack(_seeds(seed, 5))
    erased = tf.random.stateless_uniform([batch_size], erase_seed) < probability
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = tf.random.stateless_uniform([batch_size, attempts], area_seed, min_area, max_area) * height_f * width_f
    log_aspect = tf.random.stateless_uniform(
        [batch_size, attempts], aspect_seed, math.log(min_aspect), math.log(1 / min_aspect)
    )
    aspect = tf.exp(log_aspect)
    # Python's round, as timm's, rounds halves to even; so does tf.round.
    box_height = tf.round(tf.sqrt(area * aspect))
    box_width = tf.round(tf.sqrt(area / aspect))
    fits = (box_width < width_f) & (box_height < height_f)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    erased &= tf.reduce_any(fits, axis=1)
    box_height = tf.gather(box_height, first, batch_dims=1)
    box_width = tf.gather(box_width, first, batch_dims=1)
    # random.randint(0, size - box): both ends included.
    top = tf.floor(tf.random.stateless_uniform([batch_size], top_seed) * (height_f - box_height + 1))
    left = tf.floor(tf.random.stateless_uniform([batch_size], left_seed) * (width_f - box_width + 1))
    as_int = lambda values: tf.cast(values, tf.int32)  # noqa: E731
    return erased, as_int(top), as_int(left), as_int(box_height), as_int(box_width)


def random_erasing(images, seed, probability):
    """timm's RandomErasing(probability, mode='pixel', max_count=1) on normalised images.
    Noise is drawn for the erased boxes only (at timm's 0.25: a quarter of the images, a fifth
    of each on average): drawing normal values costs more than the rest of the operation."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    erased, top, left, box_height, box_width = erasing_boxes(seed, shape[0], height, width, probability)
    chosen = tf.where(erased)[:, 0]
    top, left, box_height, box_width = (tf.gather(v, chosen) for v in (top, left, box_height, box_width))
    count = tf.shape(chosen)[0]
    noise_seed = _seeds(seed, 6)[5]

    def box_noise(box):  # the box's noise, zero around it, as rows of width * 3 values
        index, box_top, box_left, rows, columns = tf.unstack(box)
        noise = tf.random.stateless_normal(
            [rows, columns * 3], tf.random.experimental.stateless_fold_in(noise_seed, index)
        )
        return tf.pad(noise, [[box_top, height - box_top - rows], [box_left * 3, (width - box_left - columns) * 3]])

    boxes = tf.stack([tf.range(count), top, left, box_height, box_width], axis=1)
    noise = tf.cond(  # map_fn cannot stack an empty list of unknown shape: no image erased
        count > 0,
        lambda: tf.map_fn(box_noise, boxes, fn_output_signature=tf.TensorSpec([None, None], tf.float32)),
        lambda: tf.zeros([0, height, width * 3]),
    )
    rows = tf.range(height)[None, :]
    columns = tf.range(width * 3)[None, :] // 3  # of rows of width * 3 values
    inside_rows = (rows >= top[:, None]) & (rows < (top + box_height)[:, None])
    inside_columns = (columns >= left[:, None]) & (columns < (left + box_width)[:, None])
    outside = 1.0 - tf.cast(inside_rows[:, :, None], tf.float32) * tf.cast(inside_columns[:, None, :], tf.float32)
    originals = tf.reshape(tf.gather(images, chosen), [count, height, width * 3])
    erased_images = tf.reshape(originals * outside + noise, [count, height, width, 3])
    return tf.tensor_scatter_nd_update(images, chosen[:, None], erased_images)


# ------------------------------------------------------------ MixUp / CutMix


def _beta(seed, alpha):
    first, second = tf.unstack(_seeds(seed, 2))
    x = tf.random.stateless_gamma([], first, alpha=alpha)
    y = tf.random.stateless_gamma([], second, alpha=alpha)
    return x / (x + y)


def cutmix_box(seed, lam, height, width):
    """timm's rand_bbox: a box of sides int(size * sqrt(1 - lam)) about a uniform centre,
    clipped to the image; returns (top, bottom, left, right)."""
    y_seed, x_seed = tf.unstack(_seeds(seed, 2))
    ratio = tf.sqrt(1.0 - lam)
    cut_height = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
    cut_width = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
    centre_y = tf.random.stateless_uniform([], y_seed, 0, height, dtype=tf.int32)
    centre_x = tf.random.stateless_uniform([], x_seed, 0, width, dtype=tf.int32)
    top = tf.clip_by_value(centre_y - cut_height // 2, 0, height)
    bottom = tf.clip_by_value(centre_y + cut_height // 2, 0, height)
    left = tf.clip_by_value(centre_x - cut_width // 2, 0, width)
    right = tf.clip_by_value(centre_x + cut_width // 2, 0, width)
    return top, bottom, left, right


def mix_batch(images, labels, seed, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5):
    """timm's Mixup(prob=1.0, mode='batch', correct_lam=True) without label smoothing (the
    loss smooths): returns mixed images and labels, labels summing to 1."""
    switch_seed, mixup_seed, cutmix_seed, box_seed = tf.unstack(_seeds(seed, 4))
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], switch_seed) < switch_prob
    else:
        use_cutmix = tf.constant(cutmix_alpha > 0)
    mirrored = tf.reverse(images, axis=[0])  # timm mixes image i with image n - 1 - i

    def mixup():
        lam = _beta(mixup_seed, mixup_alpha)
        return lam * images + (1.0 - lam) * mirrored, lam

    def cutmix():
        shape = tf.shape(images)
        top, bottom, left, right = cutmix_box(box_seed, _beta(cutmix_seed, cutmix_alpha), shape[1], shape[2])
        area = tf.cast((bottom - top) * (right - left), tf.float32)
        lam = 1.0 - area / tf.cast(shape[1] * shape[2], tf.float32)  # corrected to the clipped box
        # The box is the same in every image: pasted by slicing, exactly.
        band = tf.concat([images[:, top:bottom, :left], mirrored[:, top:bottom, left:right],
                          images[:, top:bottom, right:]], axis=2)
        return tf.concat([images[:, :top], band, images[:, bottom:]], axis=1), lam

    images, lam = tf.cond(use_cutmix, cutmix, mixup)
    labels = lam * labels + (1.0 - lam) * tf.reverse(labels, axis=[0])
    return images, labels
