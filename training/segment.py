"""Train a SwiftFormer Semantic FPN segmenter with `model.fit`.

    python -m training.segment --model L1 --dataset scene_parse150 --epochs 40 \\
        --batch-size 16 --image-size 512 --output runs/ade20k

`--dataset` is `scene_parse150` (ADE20K, from tensorflow-datasets) or a folder of image/mask
pairs (`DIR/train/{images,masks}` + `DIR/val/{images,masks}`, or `DIR/{images,masks}`). The
output folder gets `final.keras` (the whole segmenter), `final.weights.h5`, `log.csv`,
`metrics.json` (val_miou, pixel accuracy and per-class IoU) and resumable backups.
The default recipe is the paper's (mmsegmentation's): AdamW, learning rate 2e-4, weight
decay 1e-4, polynomial decay with power 0.9, the ADE20K augmentation.
"""

import os
import sys

import keras

from keras_swiftformer.models import SwiftFormerSegmenter
from keras_swiftformer.training.data import DatasetError
from keras_swiftformer.training.metrics import confusion_matrix, segmentation_metrics
from keras_swiftformer.training.segmentation_data import (
    IGNORE_LABEL,
    LABEL_ERROR,
    load_segmentation_datasets,
    make_segmentation_pipeline,
)
from training.run import (
    BACKUP,
    backed_up_epoch,
    create_output,
    csv_log,
    model_to_build,
    prepare_output,
    run_command,
    run_parser,
    save_final,
    write_metrics,
)

ADE20K_CLASSES = 150


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
    *,
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
    if epochs < 1:
        raise ValueError(f"`epochs` must be at least 1. Received: epochs={epochs}")
    if crop_size % 32:
        raise ValueError(f"`crop_size` must be a multiple of 32. Received: {crop_size}")
    prepare_output(output, resume)
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
        segmenter = SwiftFormerSegmenter(
            model, num_classes=num_classes, backbone_weights=backbone_weights,
            input_shape=(crop_size, crop_size, 3), head_norm=head_norm,
            drop_path_rate=drop_path_rate, **segmenter_options,
        )
    # The folder is created once the model is built: a failed download leaves nothing.
    create_output(output, {
        "model": model if isinstance(model, str) else model.name, "dataset": os.fspath(dataset),
        "num_classes": num_classes, "image_size": crop_size, "batch_size": batch_size,
        "epochs": epochs, "seed": seed,
    }, resume)
    start = backed_up_epoch(os.path.join(output, BACKUP), 0)
    segmenter.compile(
        optimizer=_optimizer(segmenter, learning_rate, weight_decay, steps * epochs),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_LABEL),
        metrics=[keras.metrics.MeanIoU(num_classes, ignore_class=IGNORE_LABEL, sparse_y_pred=False, name="miou")],
    )
    train_data = make_segmentation_pipeline(train_split, num_classes, crop_size, batch_size, True,
                                            augment, seed, start_epoch=start, epochs=epochs)
    val_data = make_segmentation_pipeline(val_split, num_classes, crop_size, batch_size, False)
    fit_callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(output, BACKUP)),
        csv_log(output, append=resume)[0],
        *callbacks,
    ]
    _label_errors_as_dataset_errors(lambda: segmenter.fit(
        train_data, epochs=epochs, steps_per_epoch=steps, validation_data=val_data,
        callbacks=fit_callbacks, verbose=verbose,
        shuffle=False,  # the pipeline orders each epoch itself (by seed and epoch)
    ))
    final, final_model = save_final(segmenter, output, class_names=class_names)
    matrix = _label_errors_as_dataset_errors(lambda: confusion_matrix(segmenter, val_data, num_classes))
    metrics = segmentation_metrics(matrix, class_names)
    metrics.update({
        "model": variant, "dataset": os.fspath(dataset), "num_classes": num_classes, "epochs": epochs,
        "batch_size": batch_size, "crop_size": crop_size, "train_examples": train_split.size,
        "val_examples": val_split.size, "backend": keras.backend.backend(),
        "final_model": final_model, "final_weights": final,
    })
    write_metrics(output, metrics)
    return metrics


def _parser():
    parser = run_parser(
        "python -m training.segment", __doc__.splitlines()[0], model="L1",
        weights_help="backbone weights: imagenet, a path, or none",
        dataset_help="scene_parse150 or a folder of image/mask pairs", batch_size=16, image_size=512,
    )
    parser.set_defaults(drop_path_rate=0.1)
    parser.add_argument("--num-classes", type=int, help="default: 150 for scene_parse150, else classes.txt")
    parser.add_argument("--lr", type=float, default=2e-4, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    parser.add_argument("--no-augment", action="store_true", help="no rescale, crop, flip or photometric distortion")
    parser.add_argument("--head-norm", choices=("group", "batch"), default="group",
                        help="normalisation in the head (batch folds into convolutions on export)")
    parser.add_argument("--depths", type=int, nargs=4, help="a custom backbone instead of --model")
    parser.add_argument("--widths", type=int, nargs=4, help="a custom backbone instead of --model")
    parser.add_argument("--fpn-channels", type=int, default=256, help="width of the feature pyramid")
    parser.add_argument("--head-channels", type=int, default=128, help="width of the segmentation head")
    parser.add_argument("--norm-groups", type=int, default=32, help="GroupNorm groups in the head")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.depths is None) != (args.widths is None):
        parser.error("--depths and --widths go together")
    return run_command(lambda: _run(args), args.verbose)


def _run(args):
    architecture = {"depths": args.depths, "widths": args.widths} if args.depths else {}
    weights = None if args.weights.lower() == "none" else args.weights
    metrics = train_segmenter(
        model_to_build(args.model, weights, "L1"), weights, args.dataset,
        num_classes=args.num_classes, epochs=args.epochs, batch_size=args.batch_size,
        crop_size=args.image_size, output=args.output, resume=args.resume, learning_rate=args.lr,
        weight_decay=args.weight_decay, augment=not args.no_augment,
        validation_split=args.validation_split, head_norm=args.head_norm,
        drop_path_rate=args.drop_path_rate, seed=args.seed, data_dir=args.data_dir,
        fpn_channels=args.fpn_channels, head_channels=args.head_channels,
        norm_groups=args.norm_groups, **architecture,
    )
    print(f"val_miou {metrics['val_miou']:.4f}, pixel accuracy {metrics['val_pixel_accuracy']:.4f} "
          f"-> {args.output}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
