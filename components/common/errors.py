"""User-facing errors: raised for bad config or data, shown without a traceback.

Every message names what was wrong (file, key, column, row) and what was expected,
in Keras' voice (`keras/src/layers/rnn/gru.py`): "invalid value for
`window.horizon`: expected a positive integer, got 0". `invalid_value` writes
that sentence, so every setting's error reads the same.
"""


class RnnflowError(ValueError):
    """Base class for errors caused by user input rather than a bug in rnnflow."""


class ConfigError(RnnflowError):
    """An experiment file or override is invalid (unknown key, wrong type, ...)."""


class DataError(RnnflowError):
    """The data source cannot be read or does not fit the experiment."""


class TrainingError(RnnflowError):
    """Training could not produce a usable model (for example a non-finite loss)."""


class TrackingError(RnnflowError):
    """The MLflow tracking store cannot be reached or used."""


def invalid_value(key: str, expected: str, got, where: str = "") -> str:
    """"[where: ]invalid value for `key`: expected <expected>, got <got!r>"."""
    prefix = f"{where}: " if where else ""
    return f"{prefix}invalid value for `{key}`: expected {expected}, got {got!r}"
