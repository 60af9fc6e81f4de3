"""The runtime's exception types."""


class ModelError(RuntimeError):
    """A model file or the manifest is missing, truncated, tampered with or incompatible.

    The message names the file and how to fix it; other kinds stay usable.
    """
