"""Train a SwiftFormer Semantic FPN segmenter with `model.fit`.

    python -m training.segment --model L1 --dataset scene_parse150 --epochs 40 \\
        --batch-size 16 --crop-size 512 --output runs/ade20k

`--dataset` is `scene_parse150` (ADE20K, from tensorflow-datasets) or a folder of image/mask
pairs (`DIR/train/{images,masks}` + `DIR/val/{images,masks}`, or `DIR/{images,masks}`). The
output folder gets `final.keras` (the whole segmenter), `final.weights.h5`, `log.csv`,
`metrics.json` (val_miou, pixel accuracy and per-class IoU) and resumable backups.
The default recipe is the paper's (mmsegmentation's): AdamW, learning rate 2e-4, weight
decay 1e-4, polynomial decay with power 0.9, the ADE20K augmentation.
"""

import argparse
import os
import sys

import keras
import numpy as np

from training.data import DatasetError
from training.finetune import backed_up_epoch, write_json_atomically
from training.segmentation_data import (
    IGNORE_LABEL,
    LABEL_ERROR,
    folder_segmentation_datasets,
    make_segmentation_pipeline,
    tfds_segmentation_datasets,
)

BACKUP = "backup"
ADE20K_CLASSES = 150


def load_segmentation_datasets(dataset, validation_split=0.1, seed=0, data_dir=None):
    if os.path.isdir(os.fspath(dataset)):
        return folder_segmentation_datasets(os.fspath(dataset), validation_split, seed)
    if os.path.sep in os.fspath(dataset) or os.path.exists(os.fspath(dataset)):
        raise DatasetError(f"Dataset folder not found: {dataset}")
    return tfds_segmentation_datasets(dataset, data_dir=data_dir)


def confusion_matrix(model, pipeline, num_classes):
    """Pixel counts (true class, predicted class) over a pipeline, ignore label excluded."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for images, labels in pipeline:
        predicted = np.argmax(keras.ops.convert_to_numpy(model(images, training=False)), axis=-1)
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


def _optimizer(model, learning_rate, weight_decay, total_steps):
    # BackupAndRestore restores the optimizer's step, so a resumed run continues the schedule.
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=max(total_steps, 1), end_learning_rate=0.0, power=0.9
    )
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    return optimizer


def _label_errors_as_dataset_errors(function):
    """A bad mask surfaces inside tf.data as InvalidArgumentError: re-raise it plainly."""
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - tf.errors.InvalidArgumentError on any backend
        text = str(error)
        if LABEL_ERROR in text or "size differs from its image" in text:
            lines = [line for line in text.splitlines() if LABEL_ERROR in line or "differs" in line]
            raise DatasetError((lines[0] if lines else text[:500]).strip()) from error
        raise


def train_segmenter(
    model="L1",
    backbone_weights="imagenet",
    dataset="scene_parse150",
    num_classes=None,
    epochs=10,
    batch_size=16,
    crop_size=512,
    output="runs/segment",
    resume=False,
    learning_rate=2e-4,
    weight_decay=1e-4,
    augment=True,
    validation_split=0.1,
    head_norm="group",
    drop_path_rate=0.1,
    seed=0,
    data_dir=None,
    callbacks=(),
    verbose="auto",
    **segmenter_options,
):
    """Trains a `SwiftFormerSegmenter` and returns the final metrics (also in metrics.json).

    Args:
        model: "XS", "S", "L1", "L3", or a built segmenter (logits at input resolution).
        backbone_weights: ImageNet weights for the backbone ("imagenet", a path) or None.
        dataset: "scene_parse150" (or another tfds name with image/annotation features), or a
            folder of image/mask pairs.
        num_classes: default: 150 for scene_parse150, else the lines of `classes.txt`.
        crop_size: training crop and validation canvas side (a multiple of 32).
        augment: the ADE20K training augmentation (rescale, crop, flip, photometric).
    """
    import keras_swiftformer
    from keras_swiftformer.weights import atomic_save_weights

    if epochs < 1:
        raise ValueError(f"`epochs` must be at least 1. Received: epochs={epochs}")
    if crop_size % 32:
        raise ValueError(f"`crop_size` must be a multiple of 32. Received: {crop_size}")
    os.makedirs(output, exist_ok=True)
    if os.path.exists(os.path.join(output, BACKUP)) and not resume:
        raise ValueError(
            f"{output} holds an interrupted run. Pass resume=True (--resume) to continue it, or "
            "choose another output folder."
        )
    keras.utils.set_random_seed(seed)
    train_split, val_split = load_segmentation_datasets(dataset, validation_split, seed, data_dir)
    class_names = train_split.class_names
    if num_classes is None:
        if class_names:
            num_classes = len(class_names)
        elif os.fspath(dataset) == "scene_parse150":
            num_classes = ADE20K_CLASSES
        else:
            raise ValueError(
                "Pass num_classes (--num-classes), or name the classes in DIR/classes.txt."
            )
    if class_names and len(class_names) != num_classes:
        raise ValueError(f"classes.txt names {len(class_names)} classes but num_classes={num_classes}.")
    steps = train_split.size // batch_size
    if steps == 0:
        raise DatasetError(f"batch_size={batch_size} is larger than the training split ({train_split.size}).")

    if isinstance(model, keras.Model):
        segmenter = model
        variant = segmenter.name
        if segmenter.output.shape[-1] != num_classes:
            raise ValueError(f"The model predicts {segmenter.output.shape[-1]} classes but num_classes={num_classes}.")
    else:
        variant = model
        segmenter = keras_swiftformer.SwiftFormerSegmenter(
            model, num_classes=num_classes, backbone_weights=backbone_weights,
            input_shape=(crop_size, crop_size, 3), head_norm=head_norm,
            drop_path_rate=drop_path_rate, **segmenter_options,
        )
    start = backed_up_epoch(os.path.join(output, BACKUP), 0)
    segmenter.compile(
        optimizer=_optimizer(segmenter, learning_rate, weight_decay, steps * epochs),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_LABEL),
        metrics=[keras.metrics.MeanIoU(num_classes, ignore_class=IGNORE_LABEL, sparse_y_pred=False, name="miou")],
    )
    train_data = make_segmentation_pipeline(train_split, num_classes, crop_size, batch_size, True,
                                            augment, seed, start_epoch=start, epochs=epochs)
    val_data = make_segmentation_pipeline(val_split, num_classes, crop_size, batch_size, False)
    log = os.path.join(output, "log.csv")
    fit_callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(output, BACKUP)),
        keras.callbacks.CSVLogger(log, append=resume and os.path.exists(log)),
        *callbacks,
    ]
    _label_errors_as_dataset_errors(lambda: segmenter.fit(
        train_data, epochs=epochs, steps_per_epoch=steps, validation_data=val_data,
        callbacks=fit_callbacks, verbose=verbose,
    ))
    final = os.path.join(output, "final.weights.h5")
    atomic_save_weights(segmenter, final)
    final_model = os.path.join(output, "final.keras")
    temporary = os.path.join(output, ".partial-final.keras")
    segmenter.save(temporary)
    os.replace(temporary, final_model)
    matrix = _label_errors_as_dataset_errors(lambda: confusion_matrix(segmenter, val_data, num_classes))
    metrics = segmentation_metrics(matrix, class_names)
    metrics.update({
        "model": variant, "dataset": os.fspath(dataset), "num_classes": num_classes, "epochs": epochs,
        "batch_size": batch_size, "crop_size": crop_size, "train_examples": train_split.size,
        "val_examples": val_split.size, "backend": keras.backend.backend(),
        "final_model": final_model, "final_weights": final,
    })
    write_json_atomically(os.path.join(output, "metrics.json"), metrics)
    return metrics


def _parser():
    parser = argparse.ArgumentParser(prog="python -m training.segment", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="L1", help="XS, S, L1 or L3")
    parser.add_argument("--weights", default="imagenet", help="backbone weights: imagenet, a path, or none")
    parser.add_argument("--dataset", required=True, help="scene_parse150 or a folder of image/mask pairs")
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    parser.add_argument("--num-classes", type=int)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=512)
    parser.add_argument("--output", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--head-norm", choices=("group", "batch"), default="group")
    parser.add_argument("--drop-path-rate", type=float, default=0.1)
    parser.add_argument("--depths", type=int, nargs=4, help="a custom backbone instead of --model")
    parser.add_argument("--widths", type=int, nargs=4, help="a custom backbone instead of --model")
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--head-channels", type=int, default=128)
    parser.add_argument("--norm-groups", type=int, default=32)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None):
    from keras_swiftformer.optional import MissingDependencyError
    from keras_swiftformer.pretrained import WeightsDownloadError

    args = _parser().parse_args(argv)
    if (args.depths is None) != (args.widths is None):
        print("error: --depths and --widths go together", file=sys.stderr)
        return 2
    architecture = {"depths": args.depths, "widths": args.widths} if args.depths else {}
    try:
        metrics = train_segmenter(
            args.model, None if args.weights.lower() == "none" else args.weights, args.dataset,
            args.num_classes, args.epochs, args.batch_size, args.crop_size, args.output, args.resume,
            args.lr, args.weight_decay, not args.no_augment, args.validation_split, args.head_norm,
            args.drop_path_rate, seed=args.seed, data_dir=args.data_dir,
            fpn_channels=args.fpn_channels, head_channels=args.head_channels,
            norm_groups=args.norm_groups, **architecture,
        )
    except (DatasetError, ValueError, FileNotFoundError, MissingDependencyError, WeightsDownloadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"val_miou {metrics['val_miou']:.4f}, pixel accuracy {metrics['val_pixel_accuracy']:.4f} "
          f"-> {args.output}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
