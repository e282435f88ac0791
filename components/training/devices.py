"""Several devices on one host: `train.devices` picks a
`tf.distribute.MirroredStrategy` that keeps a copy of the model on each
device and splits every global batch between them (the gradients are summed
across copies before each step).

Keras 3 does not support `MultiWorkerMirroredStrategy` (keras-team/keras#20585),
so this is one machine's devices only. A model built under the strategy trains
with `model.fit` (the compiled loop runs one device); what it saves loads and
serves on one device as usual.
"""

import contextlib
from collections.abc import Iterator


def devices_of(wanted: int | str) -> list[str]:
    """The logical devices `train.devices` names: the GPUs when there are any,
    else the CPUs (several only when split with
    `tf.config.set_logical_device_configuration`); `all` or the first N.

    Raises:
        ConfigError: more devices asked for than there are.
    """
    import tensorflow as tf

    from components.common.errors import ConfigError

    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices(
        "CPU"
    )
    names = [d.name for d in found]
    if wanted == "all":
        return names
    if wanted > len(names):
        raise ConfigError(
            f"`train.devices: {wanted}`: this machine has {len(names)} "
            f"({', '.join(names)}); use `all` or at most {len(names)}."
        )
    return names[:wanted]


def strategy_for(wanted: int | str):
    """A MirroredStrategy over `devices_of(wanted)`, or None for one device."""
    if wanted == 1:
        return None
    names = devices_of(wanted)
    if len(names) == 1:
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=names)


@contextlib.contextmanager
def scope(strategy) -> Iterator[None]:
    """Create variables under `strategy` (mirrored), or as usual for None."""
    if strategy is None:
        yield
    else:
        with strategy.scope():
            yield
