"""Every private Keras and MLflow attribute rnnflow relies on, in one place.

They are private because their libraries may change them in any release.
Each is used for a measured reason (the compiled epoch's speed, a dataset
entry MLflow's client has no public constructor for, putting MLflow's global
URIs back exactly). `tests/test_private_api.py` checks each one against the
installed versions and names the version when one has moved, so an upgrade
fails there, with the place to fix, and not deep inside a training.

Nothing here imports Keras or MLflow at module level: callers pass objects.
"""

# (where, attribute), for the test: a class or an instance built there
KERAS_ATTRIBUTES = (
    ("keras.Model", "_flatten_layers"),
    ("keras.Model", "_symbolic_build"),
    ("keras.optimizers.Adam", "_clip_gradients"),
    ("keras.optimizers.Adam", "_get_variable_index"),
    ("built keras.optimizers.Adam", "_learning_rate"),
    ("built keras.optimizers.Adam", "_momentums"),
    ("built keras.optimizers.Adam", "_velocities"),
)
MLFLOW_ATTRIBUTES = (
    ("mlflow.data.pandas_dataset.PandasDataset", "_to_mlflow_entity"),
    ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
    ("mlflow.tracking._model_registry.utils", "_registry_uri"),
)


def nested_layers(model) -> list:
    """Every layer inside `model`, nested models' layers included."""
    return model._flatten_layers(include_self=False, recursive=True)


def layer_kinds(model) -> set[str]:
    """Class names of `model` and every layer in it."""
    return {type(layer).__name__ for layer in model._flatten_layers()}


def learning_rate_setting(optimizer):
    """What the optimizer was given as learning rate: a number, a variable or
    a schedule (the public `learning_rate` evaluates a schedule)."""
    return optimizer._learning_rate


def adam_slots(optimizer, variables) -> tuple[list, list]:
    """Adam's first and second moment variables for `variables`, in order."""
    index = [optimizer._get_variable_index(v) for v in variables]
    return (
        [optimizer._momentums[i] for i in index],
        [optimizer._velocities[i] for i in index],
    )


def clip_gradients(optimizer, gradients: list) -> list:
    """The optimizer's own clipping (`clipnorm`, `clipvalue`), as `apply` does."""
    return optimizer._clip_gradients(gradients)


def symbolic_build(model, x, y) -> None:
    """Create the compiled loss and metrics variables, as `fit` does first."""
    model._symbolic_build(data_batch=(x, y))


def dataset_entity(dataset):
    """An `mlflow.data` dataset as the entity `MlflowClient.log_inputs` takes."""
    return dataset._to_mlflow_entity()


def global_uris() -> tuple:
    """MLflow's process-global tracking and registry URIs as set (None when
    unset; the public getters return a default instead)."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


def set_global_uris(uris: tuple) -> None:
    """Put back what `global_uris` returned."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._tracking_uri, registry_utils._registry_uri = uris
