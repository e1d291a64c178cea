"""Transfer learning in ten lines of plain Keras: pretrained SwiftFormer-XS, a new 5-way head,
tf_flowers from tensorflow-datasets. `python -m training.finetune` does the same with the full
official recipe, logs, checkpoints and resume."""

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_swiftformer
from keras_swiftformer.training.data import evaluation_transform, normalize

train, val = tfds.load("tf_flowers", split=["train[:90%]", "train[90%:]"], as_supervised=True)
# tf.data runs in TensorFlow whatever the Keras backend, so the map uses tf ops.
prepare = lambda image, label: (normalize(evaluation_transform(tf.cast(image, tf.float32), 224)), label)  # noqa: E731
train, val = (d.map(prepare).batch(32).prefetch(2) for d in (train.shuffle(1000), val))

model = keras_swiftformer.SwiftFormerXS(weights="imagenet", classes=5)  # new head, pretrained backbone
model.compile(keras.optimizers.AdamW(2e-4, weight_decay=0.025),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(train, validation_data=val, epochs=5)
model.save_weights("swiftformer_xs_flowers.weights.h5")
