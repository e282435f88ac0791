"""Ensembles as one Keras model: every member reads the same window and the
forecast is the element-wise median of theirs.

N-BEATS owes much of its competition result to a median over many networks;
members that differ only in their seed already cancel much of each other's
variance on short, noisy series. Being one model, an ensemble is evaluated,
calibrated, logged, registered and served like any network.
"""

import keras


@keras.saving.register_keras_serializable(package="rnnflow")
class MemberMedian(keras.layers.Layer):
    """The element-wise median over a list of member outputs of one shape
    ((B, T, K) each, or (B, T, K, Q) for quantile members: each level's
    median, which keeps the levels ordered)."""

    def call(self, outputs):
        return keras.ops.median(keras.ops.stack(outputs, axis=0), axis=0)


def median_ensemble(members: list) -> keras.Model:
    """One model whose output is the median of `members`' (renamed
    `member_0` ...; they must share their input and output shapes)."""
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    window = keras.Input(shape=tuple(members[0].inputs[0].shape[1:]), name="window")
    outputs = [member(window) for member in members]
    return keras.Model(
        window, MemberMedian(name="median")(outputs), name=f"ensemble_of_{len(members)}"
    )
