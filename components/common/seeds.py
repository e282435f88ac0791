"""Seeds that hold when other threads share the process.

Keras draws the seed of every unseeded initializer and dropout generator from
Python's process-wide `random` module (`keras.src.random.seed_generator`).
Anything else in the process that calls `random` between seeding and building
(Prefect's in-process API server, MLflow's async logger, a notebook widget)
silently changes the initial weights, so "same seed, same model" only held
when nothing else was running. `keras_seeds` gives Keras a private generator
while a model is built, which makes the weights a function of the seed alone.
"""

import contextlib
import random
import threading
from collections.abc import Iterator

import keras
from keras.src.random import seed_generator as _keras_seed_generator

_SWAP = threading.Lock()  # one private generator installed at a time


@contextlib.contextmanager
def keras_seeds(seed: int) -> Iterator[None]:
    """Inside the block, Keras' default seeds come from `random.Random(seed)`.

    Builds in other threads wait: the generator is a module global of Keras.
    """
    with _SWAP:
        shared = _keras_seed_generator.python_random
        _keras_seed_generator.python_random = random.Random(seed)
        try:
            yield
        finally:
            _keras_seed_generator.python_random = shared


def seed_everything(seed: int, deterministic_ops: bool = False) -> None:
    """Seed Python, NumPy, TensorFlow and Keras' global seed generator.

    The global generator (used by `keras.random` ops called without a seed) is
    created here from a private generator instead of lazily from the shared
    `random` module, for the reason in the module docstring.
    `deterministic_ops` turns on TensorFlow's op determinism (kernels without a
    deterministic version then raise instead of varying); it stays on for the
    rest of the process.
    """
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    with keras_seeds(seed):
        _keras_seed_generator.global_seed_generator()
