"""The repository's training recipes, with their command lines:

    python -m training.finetune ...   # classification: the official recipe, fine-tuning
    python -m training.segment ...    # Semantic FPN segmentation (ADE20K recipe)

`run` holds what both share (output folder, resuming, logs, final files). The building blocks
they use (pipelines, recipe, distillation, metrics) are in the library:
`keras_swiftformer.training`. From Python: `from training.finetune import finetune`.
(This file imports nothing, so that `python -m training.finetune` runs its module once.)
"""
