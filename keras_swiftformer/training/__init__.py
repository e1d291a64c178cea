"""Building blocks for training SwiftFormer with `model.fit`, for your own scripts as for the
repository's recipes (`python -m training.finetune`, `python -m training.segment`).

* `data`: tf.data pipelines from a folder of class subfolders or a tensorflow-datasets name,
  with the official training and evaluation transforms (any Keras backend trains from them);
* `segmentation_data`: the same for image/mask pairs, with the ADE20K augmentation;
* `recipe`: the official optimiser and schedule, and fine-tuning overrides;
* `distillation`: DeiT-style hard distillation into the distillation head;
* `metrics`: top-1/top-5/per-class accuracy and mIoU.

TensorFlow (tf.data) is needed at run time: `pip install 'keras-swiftformer[training]'`.
"""

from keras_swiftformer.training.data import (
    Augmentation,
    DatasetError,
    folder_datasets,
    load_datasets,
    make_pipeline,
    tfds_datasets,
)
from keras_swiftformer.training.distillation import HardDistillation
from keras_swiftformer.training.metrics import confusion_matrix, evaluate, segmentation_metrics
from keras_swiftformer.training.recipe import Recipe, build_optimizer, learning_rate_schedule
from keras_swiftformer.training.segmentation_data import (
    load_segmentation_datasets,
    make_segmentation_pipeline,
)

__all__ = [
    "Augmentation",
    "DatasetError",
    "HardDistillation",
    "Recipe",
    "build_optimizer",
    "confusion_matrix",
    "evaluate",
    "folder_datasets",
    "learning_rate_schedule",
    "load_datasets",
    "load_segmentation_datasets",
    "make_pipeline",
    "make_segmentation_pipeline",
    "segmentation_metrics",
    "tfds_datasets",
]
