"""Fine-tune (or train) a SwiftFormer on your images with `model.fit`.

    python -m training.finetune --model XS --weights imagenet --dataset tf_flowers \\
        --epochs 10 --batch-size 64 --image-size 224 --output runs/flowers

`--dataset` is a tensorflow-datasets name or a folder of class subfolders. The output folder
gets a checkpoint per epoch, CSV and TensorBoard logs, `final.weights.h5`, `metrics.json`
(val_top1, val_top5, per-class accuracy), `final.keras` and `learning_curves.png`. `--resume` continues an
interrupted run from its last completed epoch, with the same optimiser state and schedule.
"""

import dataclasses
import os
import sys
import warnings

import keras
import numpy as np

from keras_swiftformer.models import build_variant
from keras_swiftformer.models.swiftformer import architecture
from keras_swiftformer.training.data import Augmentation, DatasetError, load_datasets, make_pipeline
from keras_swiftformer.training.distillation import HardDistillation
from keras_swiftformer.training.metrics import evaluate, has_top5
from keras_swiftformer.training.recipe import Recipe, build_optimizer
from keras_swiftformer.variants import get_variant
from keras_swiftformer.weights import save_weights
from training.run import (
    BACKUP,
    EpochCheckpoints,
    backed_up_epoch,
    create_output,
    csv_log,
    distribution_scope,
    learning_curves,
    model_to_build,
    prepare_output,
    run_command,
    run_parser,
    save_final,
    write_metrics,
)

FROZEN_DONE = "frozen_phase.weights.h5"
FROZEN_BACKUP = BACKUP + "_frozen"  # the frozen phase's own BackupAndRestore folder


def _backbone_layers(model):
    return [layer for layer in model.layers if layer.name not in ("head", "dist_head") and layer.weights]


def _epochs(first, last):
    return f"Epoch {first}" if first == last else f"Epochs {first}-{last}"


def _compile(model, training_model, recipe, steps, epochs, label_smoothing, offset=0):
    optimizer = build_optimizer(recipe, model, steps, epochs, step_offset=offset)
    classes = model.get_layer("head").units
    training_model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="top1")]
        + ([keras.metrics.TopKCategoricalAccuracy(k=5, name="top5")] if has_top5(classes) else []),
    )


def finetune(
    model="XS",
    weights="imagenet",
    dataset="tf_flowers",
    *,
    epochs=10,
    batch_size=64,
    image_size=224,
    output="runs/finetune",
    resume=False,
    validation_split=0.1,
    augmentation=None,
    recipe=None,
    drop_path_rate=0.0,
    freeze_epochs=0,
    teacher=None,
    distillation_alpha=0.5,
    data_parallel=False,
    seed=0,
    data_dir=None,
    callbacks=(),
    verbose="auto",
):
    """Trains `model` on `dataset` and returns the final metrics (also in metrics.json).

    Args:
        model: "XS", "S", "L1", "L3", or a built Keras SwiftFormer classifier.
        weights: "imagenet", "imagenet_v1", a weights path, or None to train from scratch.
        dataset: a tensorflow-datasets name or a folder of class subfolders.
        augmentation: `keras_swiftformer.training.Augmentation`; default: the official per-variant one.
        recipe: `keras_swiftformer.training.Recipe`; default: official from scratch, `fine_tuning()`
            with pretrained weights.
        freeze_epochs: train only the new head for this many epochs first (the frozen
            backbone runs BatchNorm in inference mode, keeping its statistics).
        teacher: a Keras classifier (same inputs) for hard distillation into the
            distillation head.
        data_parallel: replicate over all local devices (JAX and TensorFlow backends). On
            both, a model passed in is copied under the distribution and the copy is trained
            (its weights are in `final.weights.h5`).
    """
    if epochs < 1:
        raise ValueError(f"`epochs` must be at least 1. Received: epochs={epochs}")
    if not 0 <= freeze_epochs < epochs:
        raise ValueError(f"`freeze_epochs` must be in [0, epochs). Received: {freeze_epochs}")
    if freeze_epochs and weights in (None, "none") and not isinstance(model, keras.Model):
        warnings.warn(
            f"freeze_epochs={freeze_epochs} with weights=None: the first {freeze_epochs} epochs "
            "train a head on a frozen, randomly initialised backbone, which learns little. "
            "Freeze only a pretrained backbone (weights='imagenet', --weights imagenet), or "
            "pass freeze_epochs=0.",
            stacklevel=2,
        )
    prepare_output(output, resume, markers=(BACKUP, FROZEN_BACKUP, FROZEN_DONE))
    keras.utils.set_random_seed(seed)
    train_split, val_split = load_datasets(dataset, validation_split, seed, data_dir)
    class_names = train_split.class_names
    variant = None
    if not isinstance(model, keras.Model):
        variant, _ = get_variant(model)
    augmentation = augmentation or Augmentation.official(variant)
    recipe = recipe or (Recipe.official() if weights in (None, "none") else Recipe.fine_tuning())
    recipe, scaled = recipe.scaled_to(epochs)
    if scaled:
        print(scaled)
    steps = train_split.size // batch_size
    if steps == 0:
        raise DatasetError(
            f"batch_size={batch_size} is larger than the training split ({train_split.size} images)."
        )
    if train_split.size % batch_size:
        batches = f"{steps} full batch{'es' if steps > 1 else ''} of {batch_size}"
        rest = ("each epoch's order differs, so other images are left out each epoch" if epochs > 1
                else "the others are not used in a 1-epoch run")
        print(f"Each epoch trains on {steps * batch_size} of the {train_split.size} training images "
              f"({batches}); {rest}.")

    scope = distribution_scope(data_parallel)
    with scope():
        if isinstance(model, keras.Model) and data_parallel:
            # Variables must be created under the distribution (MirroredStrategy's scope, or
            # JAX's DataParallel layout): train a copy made there.
            student = keras.models.clone_model(model)
            student.set_weights(model.get_weights())
        elif isinstance(model, keras.Model):
            student = model
        else:
            student = build_variant(
                variant, weights=None if weights in (None, "none") else weights,
                classes=len(class_names), drop_path_rate=drop_path_rate,
                input_shape=(image_size, image_size, 3),
            )
        if student.get_layer("head").units != len(class_names):
            raise ValueError(
                f"The model has {student.get_layer('head').units} classes but the dataset "
                f"{len(class_names)}."
            )
        trainer = student if teacher is None else HardDistillation(
            student, teacher, distillation_alpha, augmentation.label_smoothing
        )
        if teacher is not None:
            trainer(np.zeros((1, image_size, image_size, 3), "float32"))

    # The folder is created once the model is built: a failed download leaves nothing.
    create_output(output, {
        "model": variant or model.name, "weights": weights if weights is None or isinstance(weights, str) else "given",
        "dataset": os.fspath(dataset), "classes": class_names, "image_size": image_size,
        "batch_size": batch_size, "epochs": epochs, "freeze_epochs": freeze_epochs, "seed": seed,
    }, resume)

    val_data = make_pipeline(val_split, len(class_names), image_size, batch_size, training=False)
    common = [
        keras.callbacks.TensorBoard(os.path.join(output, "tensorboard")),
        EpochCheckpoints(os.path.join(output, "checkpoints")),
        *callbacks,
    ]

    def run_phase(first_epoch, last_epoch, backup, trainable_backbone):
        for layer in _backbone_layers(student):
            layer.trainable = trainable_backbone
        with scope():
            _compile(student, trainer, recipe, steps, epochs, augmentation.label_smoothing,
                     offset=first_epoch * steps)
            # Optimizer slots now, inside the scope (MirroredStrategy needs them there).
            trainer.optimizer.build(trainer.trainable_variables)
        restore = keras.callbacks.BackupAndRestore(os.path.join(output, backup))
        start = backed_up_epoch(os.path.join(output, backup), first_epoch)
        train_data = make_pipeline(
            train_split, len(class_names), image_size, batch_size, training=True,
            augmentation=augmentation, seed=seed, start_epoch=start, epochs=last_epoch,
        )
        # The second phase continues the first one's log.
        logger, _ = csv_log(output, append=resume or first_epoch > 0)
        return trainer.fit(
            train_data, epochs=last_epoch, initial_epoch=first_epoch, steps_per_epoch=steps,
            validation_data=val_data, callbacks=[restore, logger, *common], verbose=verbose,
            shuffle=False,  # the pipeline orders each epoch itself (by seed and epoch)
        )

    if freeze_epochs:
        frozen_done = os.path.join(output, FROZEN_DONE)
        if os.path.exists(frozen_done):
            student.load_weights(frozen_done)
        else:
            print(f"{_epochs(1, freeze_epochs)} of {epochs}: the new head only (backbone frozen)")
            run_phase(0, freeze_epochs, FROZEN_BACKUP, trainable_backbone=False)
            save_weights(student, frozen_done)
        print(f"{_epochs(freeze_epochs + 1, epochs)} of {epochs}: the whole model")
    run_phase(freeze_epochs, epochs, BACKUP, trainable_backbone=True)

    final, final_model = save_final(student, output, metadata={
        **architecture(student), "variant": variant, "class_names": class_names,
        "image_size": image_size,
    }, class_names=class_names)
    metrics = evaluate(student, val_data, class_names)
    metrics.update({
        "model": variant or student.name, "weights": weights if isinstance(weights, str) or weights is None else str(weights),
        "dataset": os.fspath(dataset), "epochs": epochs, "batch_size": batch_size,
        "image_size": image_size, "train_examples": train_split.size, "classes": class_names,
        "backend": keras.backend.backend(), "final_weights": final, "final_model": final_model,
        "recipe": {**dataclasses.asdict(recipe), "scaled": scaled},
    })
    write_metrics(output, metrics)
    learning_curves(os.path.join(output, "log.csv"), os.path.join(output, "learning_curves.png"))
    if os.path.exists(os.path.join(output, FROZEN_DONE)):
        os.remove(os.path.join(output, FROZEN_DONE))
    return metrics


def _parser():
    parser = run_parser(
        "python -m training.finetune", __doc__.splitlines()[0], model="XS",
        weights_help="imagenet, imagenet_v1, a path, or none",
        dataset_help="tfds name or folder of class subfolders", batch_size=64, image_size=224,
    )
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--warmup-epochs", type=float, help="default: the recipe's, scaled to --epochs")
    parser.add_argument("--freeze-epochs", type=int, default=0, help="epochs that train only the new head first")
    parser.add_argument("--ema-decay", type=float, default=0.0, help="exponential moving average of the weights (0: off)")
    parser.add_argument("--no-randaugment", action="store_true", help="turn RandAugment off (a CPU-bound input pipeline)")
    parser.add_argument("--mixup", type=float, help="default: the variant's official setting")
    parser.add_argument("--cutmix", type=float, help="default: the variant's official setting")
    parser.add_argument("--teacher", help=".keras teacher model for hard distillation")
    parser.add_argument("--data-parallel", action="store_true", help="train on every device (JAX, TensorFlow)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    return run_command(lambda: _run(args), args.verbose)


def _run(args):
    weights = None if args.weights.lower() == "none" else args.weights
    variant, _ = get_variant(model_to_build(args.model, weights, "XS"))
    augmentation = Augmentation.official(variant)
    if args.no_randaugment:
        augmentation.randaugment = False
    if args.mixup is not None:
        augmentation.mixup = args.mixup
    if args.cutmix is not None:
        augmentation.cutmix = args.cutmix
    recipe = Recipe.official() if weights is None else Recipe.fine_tuning()
    if args.lr is not None:
        recipe.learning_rate = args.lr
    if args.warmup_epochs is not None:
        recipe.warmup_epochs, recipe.reference_epochs = args.warmup_epochs, None  # as asked
    recipe.ema_decay = args.ema_decay
    teacher = keras.saving.load_model(args.teacher, compile=False) if args.teacher else None
    metrics = finetune(
        variant, weights, args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        image_size=args.image_size, output=args.output, resume=args.resume,
        validation_split=args.validation_split, augmentation=augmentation, recipe=recipe,
        drop_path_rate=args.drop_path_rate, freeze_epochs=args.freeze_epochs, teacher=teacher,
        data_parallel=args.data_parallel, seed=args.seed, data_dir=args.data_dir,
    )
    top5 = "" if metrics["val_top5"] is None else f", val_top5 {metrics['val_top5']:.4f}"
    print(f"val_top1 {metrics['val_top1']:.4f}{top5} -> {args.output}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
