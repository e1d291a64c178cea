"""Where fine-tuning time goes on this machine: Keras' RandAugment inside tf.data, and one
SwiftFormer-XS training step at 224x224 (the figures quoted in the README's fine-tuning part).

    KERAS_BACKEND=tensorflow python examples/measure_training_speed.py
"""

import time

import keras
import numpy as np
import tensorflow as tf

import keras_swiftformer


def main():
    augment = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=0)
    images = np.random.RandomState(0).uniform(0, 255, (64, 224, 224, 3)).astype("float32")
    pipeline = tf.data.Dataset.from_tensor_slices(images).batch(16).map(lambda x: augment(x, training=True)).repeat(3)
    start, batches = time.time(), 0
    for _ in pipeline:
        batches += 1
    print(f"RandAugment in tf.data: {1000 * (time.time() - start) / batches:.0f} ms per batch of 16 (224x224)")

    model = keras_swiftformer.SwiftFormerXS(classes=5, input_shape=(224, 224, 3))
    model.compile(keras.optimizers.AdamW(1e-3), keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(0).normal(size=(64, 224, 224, 3)).astype("float32")
    y = np.eye(5, dtype="float32")[np.arange(64) % 5]
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # compile and warm up
    start = time.time()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    step = (time.time() - start) / 4
    print(f"XS training step, batch 32 at 224 ({keras.backend.backend()}): {step:.2f} s "
          f"-> one tf_flowers epoch (3,303 images): {step * 3303 / 32 / 60:.1f} min")


if __name__ == "__main__":
    main()
