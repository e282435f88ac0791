"""Custom layers. Each is registered and has a complete `get_config`, so models
that use them save as `.keras` and load with `safe_mode=True`."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rnnflow")
class StepEncoding(keras.layers.Layer):
    """One-hot position of each decoder step: (B, ...) -> (B, T, T).

    A decoder fed the same vector at every step must infer where it is in the
    horizon from its own state; telling it directly makes long horizons learn
    much faster.
    """

    def __init__(self, steps: int, **kwargs):
        super().__init__(**kwargs)
        if steps <= 0:
            raise ValueError(
                f"Received an invalid value for argument `steps`, expected a "
                f"positive integer, got {steps}."
            )
        self.steps = steps

    def call(self, reference):
        batch = ops.shape(reference)[0]
        eye = ops.eye(self.steps, dtype=self.compute_dtype)  # (T, T)
        return ops.broadcast_to(eye[None], (batch, self.steps, self.steps))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps, self.steps)

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}
