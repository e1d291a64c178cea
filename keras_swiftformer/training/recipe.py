"""The official SwiftFormer training recipe (`main.py` of the official repository) as Keras
objects, with fine-tuning-friendly overrides."""

import dataclasses

import keras


@dataclasses.dataclass
class Recipe:
    """Optimiser and schedule settings.

    Official defaults: AdamW, lr 2e-3 (the official script's linear scaling with batch size is
    commented out, so 2e-3 is used as is), weight decay 0.025, cosine schedule to 1e-5 after a
    5-epoch linear warm-up from 1e-6, gradient clipping at global norm 0.01, label smoothing 0.1
    (in `Augmentation`). `fine_tuning()` lowers the learning rate and the warm-up for starting
    from pretrained weights.

    The warm-up is sized for a run of `reference_epochs` (the official 5 epochs are for 300):
    `scaled_to(epochs)` shortens it in proportion for a shorter run, since a 5-epoch warm-up
    never ends in a 3-epoch run. `reference_epochs=None` keeps it as set.
    """

    learning_rate: float = 2e-3
    weight_decay: float = 0.025
    min_learning_rate: float = 1e-5
    warmup_learning_rate: float = 1e-6
    warmup_epochs: float = 5
    clip_global_norm: float = 0.01
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights
    reference_epochs: int = 300

    @classmethod
    def official(cls):
        return cls()

    @classmethod
    def fine_tuning(cls):
        # One warm-up epoch for a fine-tuning run of about ten epochs.
        return cls(learning_rate=2e-4, warmup_epochs=1, min_learning_rate=1e-6, reference_epochs=10)

    def scaled_to(self, epochs):
        """(this recipe for a run of `epochs`, a sentence saying what was scaled or None)."""
        if not self.reference_epochs or epochs >= self.reference_epochs or not self.warmup_epochs:
            return self, None
        warmup = self.warmup_epochs * epochs / self.reference_epochs
        note = (
            f"recipe: warm-up scaled from {self.warmup_epochs:g} to {warmup:.3g} epochs for a "
            f"{epochs}-epoch run (a {self.warmup_epochs:g}-epoch warm-up is sized for a "
            f"{self.reference_epochs}-epoch run); set the warm-up explicitly to keep it"
        )
        return dataclasses.replace(self, warmup_epochs=warmup, reference_epochs=None), note


def learning_rate_schedule(recipe, steps_per_epoch, epochs):
    """Linear warm-up from `warmup_learning_rate` to `learning_rate`, then cosine decay to
    `min_learning_rate`, per step."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, int(round(steps_per_epoch * recipe.warmup_epochs)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.warmup_learning_rate if warmup else recipe.learning_rate,
        decay_steps=max(1, total - warmup),
        alpha=recipe.min_learning_rate / recipe.learning_rate,
        warmup_target=recipe.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class OffsetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule(step + offset)`: a phase that starts with a fresh optimizer (after unfreezing
    the backbone) continues the schedule where the previous phase left it."""

    def __init__(self, schedule, offset):
        self.schedule, self.offset = schedule, int(offset)

    def __call__(self, step):
        return self.schedule(step + self.offset)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "offset": self.offset}

    @classmethod
    def from_config(cls, config):
        return cls(keras.optimizers.schedules.deserialize(config["schedule"]), config["offset"])


def build_optimizer(recipe, model, steps_per_epoch, epochs, step_offset=0):
    """AdamW with the schedule; no weight decay on biases, norms and layer scales (1-D
    weights), as timm's optimizer factory does for the official training."""
    schedule = learning_rate_schedule(recipe, steps_per_epoch, epochs)
    if step_offset:
        schedule = OffsetSchedule(schedule, step_offset)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=recipe.weight_decay,
        global_clipnorm=recipe.clip_global_norm or None,
        use_ema=recipe.ema_decay > 0,
        ema_momentum=recipe.ema_decay or 0.99,
    )
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) <= 1]
    )
    return optimizer
