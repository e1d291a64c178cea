"""Transfer learning in plain Keras: pretrained SwiftFormer-XS with a new head, on a tfds dataset.

tf_flowers by default, or another tensorflow-datasets image dataset; `--data-dir` reads one
prepared on another machine. `python -m training.finetune` does the same with the full
official recipe, logs, checkpoints, resume, and folders of your own images.

    python examples/transfer_learning.py [--dataset tf_flowers] [--data-dir DIR] [--epochs 5] [-o OUT.weights.h5]
"""

import argparse
import sys

import keras
import tensorflow as tf

import keras_swiftformer
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.training.data import DatasetError, evaluation_transform, normalize, prepared_tfds_builder
from keras_swiftformer.weights import save_weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--dataset", default="tf_flowers", help="a tfds image classification dataset")
    parser.add_argument("--data-dir", help="tensorflow-datasets data folder (default: tfds' own, ~/tensorflow_datasets)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs")
    parser.add_argument("-o", "--output", default="swiftformer_xs_flowers.weights.h5", help="the weights to write")
    args = parser.parse_args()
    if not args.output.endswith(".weights.h5"):
        parser.error(f"-o {args.output}: end the name with .weights.h5")
    try:
        builder = prepared_tfds_builder(args.dataset, args.data_dir)  # downloads once; offline: a clear error
    except DatasetError as error:
        sys.exit(f"error: {error}")
    train, val = builder.as_dataset(split=["train[:90%]", "train[90%:]"], as_supervised=True)
    classes = builder.info.features["label"].num_classes
    # tf.data runs in TensorFlow whatever the Keras backend, so the map uses tf ops.
    prepare = lambda image, label: (normalize(evaluation_transform(tf.cast(image, tf.float32), 224)), label)  # noqa: E731
    train, val = (d.map(prepare).batch(32).prefetch(2) for d in (train.shuffle(1000), val))

    model = keras_swiftformer.SwiftFormerXS(weights="imagenet", classes=classes)  # new head, pretrained backbone
    model.compile(keras.optimizers.AdamW(2e-4, weight_decay=0.025),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    # shuffle=False: the dataset shuffles itself (above); Keras' default would be ignored, with a warning.
    model.fit(train, validation_data=val, epochs=args.epochs, shuffle=False)
    save_weights(model, args.output)  # written whole or not at all
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
