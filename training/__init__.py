"""Fine-tuning SwiftFormer with `model.fit`: data pipelines, the official recipe, the CLI."""

from training.data import Augmentation, DatasetError, folder_datasets, make_pipeline, tfds_datasets
from training.distillation import HardDistillation
from training.finetune import evaluate, finetune
from training.recipe import Recipe, build_optimizer, learning_rate_schedule

__all__ = [
    "Augmentation",
    "DatasetError",
    "HardDistillation",
    "Recipe",
    "build_optimizer",
    "evaluate",
    "finetune",
    "folder_datasets",
    "learning_rate_schedule",
    "make_pipeline",
    "tfds_datasets",
]
