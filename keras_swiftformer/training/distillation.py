"""DeiT-style hard distillation through SwiftFormer's distillation head, backend-agnostic."""

import keras
from keras import ops


class HardDistillation(keras.Model):
    """Trains a SwiftFormer's class head on the labels and its distillation head on a
    teacher's hard predictions (`argmax`), as the official models were trained:
    `loss = (1 - alpha) * CE(head, y) + alpha * CE(dist_head, argmax teacher(x))`.

    Metrics see the average of the two heads, which is what the student returns at inference.
    Save `student`, not this wrapper.
    """

    def __init__(self, student, teacher, alpha=0.5, label_smoothing=0.1, **kwargs):
        super().__init__(**kwargs)
        names = {layer.name for layer in student.layers}
        if "dist_head" not in names:
            raise ValueError("Distillation needs a student with a distillation head (distillation=True).")
        self.student = student
        self.heads = keras.Model(
            student.input, [student.get_layer("head").output, student.get_layer("dist_head").output]
        )
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = float(alpha)
        self.classes = int(student.get_layer("head").units)
        self.label_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
        self.teacher_loss = keras.losses.CategoricalCrossentropy(from_logits=True)

    def call(self, inputs, training=False):
        head, dist = self.heads(inputs, training=training)
        return ops.concatenate([head, dist], axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        head, dist = y_pred[..., : self.classes], y_pred[..., self.classes :]
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        teacher_labels = ops.one_hot(ops.argmax(teacher_logits, axis=-1), self.classes)
        loss = (1.0 - self.alpha) * self.label_loss(y, head) + self.alpha * self.teacher_loss(teacher_labels, dist)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        averaged = (y_pred[..., : self.classes] + y_pred[..., self.classes :]) / 2
        return super().compute_metrics(x, y, averaged, sample_weight)
