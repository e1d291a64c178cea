"""The error every export path raises when a model cannot be exported as asked."""


class ExportError(RuntimeError):
    """The model could not be exported as asked."""
