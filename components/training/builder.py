"""A model ready to train: what the `build` task of every flow does, in one
function, so flows only log it.

Seeding comes first (initial weights and dropout depend on the seed alone),
the architecture is built and compiled under the precision policy, and a
linear skip starts at the least-squares fit of the training windows.
"""

from dataclasses import dataclass

from components.common import seeds
from components.config.schema import ModelSpec, TrainSpec, WindowSpec
from components.data.preprocess import ScaledSplit
from components.data.windowing import make_windows
from components.models import build_model
from components.models.skip import SHARED_SKIP_LAYER, SKIP_LAYER, fit_linear_skip
from components.training import devices, precision
from components.training import fit as training


@dataclass(frozen=True)
class BuiltModel:
    """A compiled model and what was built, for the log.

    Attributes:
        policy: the Keras precision policy it was built under.
        parts: what was added to the architecture (`+ linear skip`, ...).
    """

    model: object  # keras.Model
    kind: str
    policy: str
    parts: tuple[str, ...]

    def describe(self) -> str:
        """`gru + linear skip, window norm revin (float32): 3414 parameters`."""
        extra = "".join(self.parts)
        return f"{self.kind}{extra} ({self.policy}): {self.model.count_params()} parameters"


def build_for_training(
    spec: ModelSpec,
    train: TrainSpec,
    window: WindowSpec,
    train_split: ScaledSplit,
    positions: tuple[int, ...] = (),
) -> BuiltModel:
    """Seed, build and compile `spec` for the training split's shapes under
    `train.precision`; fit a linear skip (if any) on its windows."""
    seeds.seed_everything(train.seed, train.deterministic)
    input_shape = (window.input_width, train_split.inputs.shape[1])
    output_shape = (window.horizon, train_split.targets.shape[1])
    strategy = devices.strategy_for(train.devices)
    with precision.precision_policy(
        precision.resolve_precision(train.precision)
    ) as policy, devices.scope(strategy):
        model = build_model(
            spec, input_shape, output_shape, train.seed, positions,
            n_series=len(train_split.series),
        )  # fmt: skip
        training.compile_model(model, train)
    parts = []
    if spec.skip != "none":  # windows materialized only for the fit
        x, y = make_windows(
            train_split.inputs, train_split.targets, window, train_split.bounds
        )
        if fit_linear_skip(model, x, y):
            parts.append(f" + {'shared ' if spec.skip == 'shared' else ''}linear skip")
    if spec.window_norm != "none":
        parts.append(f", window norm {spec.window_norm}")
    if strategy is not None:
        parts.append(f", mirrored on {strategy.num_replicas_in_sync} devices")
    if spec.id_embedding:
        parts.append(f", {spec.id_embedding}-number embedding of each series")
    return BuiltModel(model, spec.kind, policy, tuple(parts))


def load_matching_weights(model, source) -> bool:
    """Copy `source`'s weights into `model` layer by layer (a warm start),
    when every layer's shapes match; False (nothing copied) otherwise. The
    linear skip keeps `model`'s own least-squares fit on its training rows:
    a better start than the source's fit to older rows (bench/README.md,
    "Warm against cold retraining")."""
    ours = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.layers if layer.weights]

    def shapes(layers):
        return [[tuple(w.shape) for w in layer.get_weights()] for layer in layers]

    if shapes(ours) != shapes(theirs):
        return False
    for layer, found in zip(ours, theirs):
        if layer.name not in (SKIP_LAYER, SHARED_SKIP_LAYER):
            layer.set_weights(found.get_weights())
    return True
