"""Validation metrics: top-1/top-5 and per-class accuracy for classifiers, mIoU for
segmenters (as mmsegmentation reports it)."""

import keras
import numpy as np

from keras_swiftformer.training.segmentation_data import IGNORE_LABEL


def has_top5(classes):
    """Whether a top-5 accuracy says anything: of 5 classes or fewer it is 1.0 whatever the
    model does."""
    return classes > 5


def evaluate(model, pipeline, class_names):
    """top-1, top-5 and per-class accuracy of `model` on a validation pipeline (`val_top5`
    None where `has_top5` is false, not a trivial 1.0)."""
    predictions, labels = [], []
    for images, one_hot in pipeline:
        predictions.append(_predict(model, images))
        labels.append(np.asarray(one_hot).argmax(-1))
    predictions, labels = np.concatenate(predictions), np.concatenate(labels)
    k = min(5, predictions.shape[1])
    top_k = np.argsort(-predictions, axis=1)[:, :k]
    per_class = {
        name: float(np.mean(predictions[labels == i].argmax(-1) == i)) if np.any(labels == i) else None
        for i, name in enumerate(class_names)
    }
    return {
        "val_top1": float(np.mean(top_k[:, 0] == labels)),
        "val_top5": float(np.mean(np.any(top_k == labels[:, None], axis=1))) if has_top5(predictions.shape[1]) else None,
        "val_examples": int(len(labels)),
        "per_class_accuracy": per_class,
    }


def _predict(model, images):
    """One batch of predictions as a NumPy array. On JAX through Keras' compiled predict step:
    called eagerly, JAX compiles every operation of the model on its own (the final evaluation
    of a fine-tuned tiny model took 20 s that way, about as long as its training). Elsewhere
    eagerly: under a TensorFlow MirroredStrategy, `predict_on_batch` runs the whole batch on
    every replica and returns it once per replica."""
    if keras.backend.backend() == "jax":
        return keras.ops.convert_to_numpy(model.predict_on_batch(np.asarray(images)))
    return keras.ops.convert_to_numpy(model(images, training=False))


def confusion_matrix(model, pipeline, num_classes):
    """Pixel counts (true class, predicted class) over a pipeline, ignore label excluded."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for images, labels in pipeline:
        predicted = np.argmax(_predict(model, images), axis=-1)
        labels = np.asarray(labels)
        keep = labels != IGNORE_LABEL
        matrix += np.bincount(
            labels[keep].astype(np.int64) * num_classes + predicted[keep], minlength=num_classes**2
        ).reshape(num_classes, num_classes)
    return matrix


def segmentation_metrics(matrix, class_names=None):
    """mIoU as mmsegmentation reports it: the mean over classes present in the labels or
    predictions (a class absent from both has no IoU)."""
    true_positive = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - true_positive
    iou = np.where(union > 0, true_positive / np.maximum(union, 1), np.nan)
    names = class_names or [str(i) for i in range(len(matrix))]
    return {
        "per_class_pixels": {name: int(count) for name, count in zip(names, matrix.sum(1))},
        "val_miou": float(np.nanmean(iou)) if np.any(union > 0) else 0.0,
        "val_pixel_accuracy": float(true_positive.sum() / max(matrix.sum(), 1)),
        "val_pixels": int(matrix.sum()),
        "per_class_iou": {name: (None if np.isnan(value) else float(value)) for name, value in zip(names, iou)},
    }
