"""Mixed precision: which Keras dtype policy `train.precision` means on this
machine, and a block that sets it for one build and restores it after (the
policy is process-global, and other threads may be building too).
"""

import contextlib
from collections.abc import Iterator

import keras


def resolve_precision(precision: str) -> str:
    """`auto` -> `mixed_float16` when TensorFlow sees a GPU, else `float32`."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


@contextlib.contextmanager
def precision_policy(policy: str) -> Iterator[str]:
    """Build (and compile) models under `policy`; restore the global one after.

    Layers take the global dtype policy when they are created, and a model whose
    policy is `mixed_float16` gets loss scaling from `compile` automatically.
    Heads are pinned to float32, so forecasts and the loss stay float32.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)
