"""The runtime's exception types, and how running out of memory is reported."""
from __future__ import annotations

# How onnxruntime words an allocation failure (std::bad_alloc surfaces as "bad allocation" or
# "std::bad_alloc"; its allocators say "Failed to allocate memory"); numpy raises MemoryError.
_OUT_OF_MEMORY = ("bad_alloc", "bad allocation", "failed to allocate", "out of memory",
                  "cannot allocate memory", "memory allocation failed", "unable to allocate",
                  "failed to map segment")


class ModelError(RuntimeError):
    """A model file or the manifest is missing, truncated, tampered with or incompatible, or
    the process ran out of memory loading or running it.

    The message names the file and how to fix it; other kinds stay usable.
    """


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (a MemoryError or an onnxruntime failure) means memory ran out."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _OUT_OF_MEMORY)


def out_of_memory(path, doing: str) -> ModelError:
    """The ModelError for running out of memory while ``doing`` (loading/running) ``path``."""
    return ModelError(f"out of memory {doing} {path}: free memory, raise the process's "
                      f"memory limit, or ask for less work per call (runtime.configure("
                      f"low_memory=True) or RUNTIME_LOW_MEMORY=1 lowers the peak)")
