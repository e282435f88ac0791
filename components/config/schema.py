"""The experiment schema: one pydantic model per section, unknown keys refused.

Config is validated once, at the door (`loading.load_experiment`); downstream
code trusts it. Each component receives only its own section (`WindowSpec`,
`TrainSpec`, ...). docs/configuration.md is generated from these classes
(`python -m components.config.reference`).

An experiment file is a YAML mapping with any of the sections below set inline,
plus an optional `defaults:` mapping that pulls a section from
`conf/<section>/<name>.yaml`.
"""

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from components.common.redact import redact_url

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
# The `model.kind` values; each has a builder in components/models/registry.py
# (tests/test_models.py checks both lists agree).
MODEL_KINDS = ("bidirectional", "gru", "lstm", "mlp", "seq2seq", "simple_rnn")
SECTIONS = (
    "data",
    "split",
    "window",
    "model",
    "train",
    "evaluate",
    "tracking",
    "retrain",
    "forecast",
    "monitor",
    "cluster",
)


class _Strict(BaseModel):
    """Base for every section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataSpec(_Strict):
    """Where the series comes from and which columns go in and out."""

    path: str = Field(
        "statsmodels:sunspots",
        description="CSV/Parquet path, http(s) URL, `statsmodels:NAME`, or "
        "`tfds:NAME[/CONFIG][:VERSION]` (with `tfds_dir`).",
    )
    sha256: str | None = Field(None, description="Expected sha256 of the file.")
    targets: list[str] | None = Field(
        None, description="Columns to predict; default all numeric columns."
    )
    features: list[str] | None = Field(
        None, description="Input columns; default all numeric columns."
    )
    time_column: str | None = Field(
        None, description="Column used as the time index (dropped from inputs)."
    )
    frequency: str | None = Field(
        None,
        description="Pandas offset alias (`h`, `D`, `MS`, ...): gaps are errors. "
        "Unset: inferred from the time column and recorded.",
    )
    missing: Literal["error", "interpolate", "ffill", "drop"] = Field(
        "error",
        description="Missing values: refuse, interpolate, carry forward, or drop "
        "rows. Applied within each split, never across split boundaries.",
    )
    calendar: list[Literal["hour", "day", "week"]] = Field(
        default_factory=list,
        description="Sine/cosine input features: hour of day, day of week, week "
        "of year (needs a datetime `time_column`).",
    )
    transform: Literal["none", "diff", "log_diff"] = Field(
        "none",
        description="Model differences (or log differences) of trending series; "
        "original-unit metrics are computed on the re-integrated levels.",
    )
    tfds_dir: str | None = Field(
        None, description="TFDS data_dir for `tfds:NAME` paths and snapshots."
    )
    id_column: str | list[str] | None = Field(
        None,
        description="Series key column(s) of a long table (one row per series and "
        "time): a panel, one model learns every series. Needs `time_column`.",
    )
    layout: Literal["table", "panel"] = Field(
        "table",
        description="A wide table: `table` reads its columns as one multivariate "
        "series; `panel` reads each target column as its own series of one "
        "panel (id: the column name), with the time column shared.",
    )
    known: list[str] = Field(
        default_factory=list,
        description="Columns known in advance (planned price, promotion, "
        "holiday): each window reads their values up to its last target step "
        "(led by `window.offset + window.horizon` rows), so a forecast needs "
        "them for the rows ahead. Never targets; never differenced.",
    )
    static: list[str] = Field(
        default_factory=list,
        description="Panel columns constant within each series (region, store "
        "type, size): numeric ones enter as they are, others one-hot, as input "
        "channels of every window of the series.",
    )
    scale: Literal["series", "global"] = Field(
        "series",
        description="Panel normalization: each series by its own training rows, "
        "or one set of statistics over every series' training rows.",
    )
    stream: bool = Field(
        False,
        description="Train on a Parquet panel (a folder, e.g. hive-partitioned by "
        "`id_column`) without holding it in memory: one pass fits each series' "
        "training statistics, then every epoch reads the files again, a few at "
        "a time, drawing `train.windows_per_series` windows of each series "
        "through a bounded shuffle buffer; test scores and `rnnflow predict` "
        "read it the same way. Each file must hold whole series. Targets are the "
        "inputs (no covariates yet); scored against persistence and seasonal "
        "naive (docs/operations.md, \"Panels larger than memory\").",
    )
    short_series: Literal["pad", "skip", "error"] = Field(
        "pad",
        description="A panel series with too few training rows for one window: "
        "`pad` repeats its first row in front as many times as the window lacks "
        "(it needs `horizon + offset + 1` rows; statistics skip the padding), so "
        "it still lends the model windows; `skip` leaves it out (counted and "
        "listed in the run); `error` refuses the panel.",
    )

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.lower()
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise ValueError("expected 64 hexadecimal characters")
        return value

    @field_validator("targets", "features")
    @classmethod
    def _non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("expected at least one column name (or leave it unset)")
        return value

    @model_validator(mode="after")
    def _panel_keys_need_an_id(self) -> "DataSpec":
        if self.static and not self.id_column:
            raise ValueError(
                "`data.static` needs `data.id_column`: static columns describe "
                "the series of a panel"
            )
        overlap = sorted(set(self.known) & set(self.targets or []))
        if overlap:
            raise ValueError(
                f"`data.known` {overlap} are also targets: a column known in "
                "advance is an input, not something to forecast"
            )
        if self.layout == "panel" and self.id_column:
            raise ValueError(
                "`data.layout: panel` reads a wide table (one column per series); "
                "a long table with `data.id_column` is a panel already"
            )
        if self.layout == "panel" and (self.static or self.features or self.known):
            raise ValueError(
                "`data.layout: panel` takes each target column as a series of "
                "its own past: leave `data.features`, `data.known` and "
                "`data.static` unset"
            )
        if self.layout == "panel" and not self.time_column:
            raise ValueError("`data.layout: panel` needs `data.time_column`")
        if self.id_column and not self.time_column:
            raise ValueError(
                "`data.id_column` needs `data.time_column`: a panel is split at "
                "the same time for every series"
            )
        return self

    @property
    def is_panel(self) -> bool:
        """Many series for one model: a long table or a wide one read as a panel."""
        return bool(self.id_column) or self.layout == "panel"

    @property
    def id_columns(self) -> list[str]:
        """`id_column` as a list (empty for a single series)."""
        if self.id_column is None:
            return []
        return [self.id_column] if isinstance(self.id_column, str) else self.id_column

    @field_serializer("path", when_used="json")
    def _redacted_path(self, value: str) -> str:
        # JSON is for storage and display (Prefect flow-run parameters, logs):
        # credentials in a URL stay in the Python object only.
        return redact_url(value)


class SplitSpec(_Strict):
    """Chronological split: validation sits just before test, test at the end.

    Values >= 1 are row counts, values < 1 are fractions of all rows.
    """

    val: int | float = Field(
        0.15,
        ge=0,
        description="Validation rows (>= 1) or fraction of all rows (< 1), just "
        "before the test split: early stopping, guard rails, interval calibration.",
    )
    test: int | float = Field(
        0.2,
        gt=0,
        description="Test rows (>= 1) or fraction of all rows (< 1), at the end; "
        "a panel cuts every series at the same times.",
    )

    @field_validator("val", "test")
    @classmethod
    def _whole_rows(cls, value: int | float) -> int | float:
        if value >= 1 and value != int(value):
            raise ValueError("expected a fraction < 1 or a whole row count >= 1")
        return value


class WindowSpec(_Strict):
    """`input_width` past steps predict `horizon` steps, `offset` steps later.

    Window i reads rows [i*stride, i*stride + input_width) and predicts rows
    starting `offset` rows after its last input row + 1.
    """

    input_width: PositiveInt = Field(10, description="Past steps each window reads.")
    horizon: PositiveInt = Field(1, description="Future steps each window predicts.")
    stride: PositiveInt = Field(1, description="Rows between window starts.")
    offset: int = Field(0, ge=0, description="Gap between inputs and targets.")

    @property
    def span(self) -> int:
        """Rows one whole window covers, inputs to last target."""
        return self.input_width + self.offset + self.horizon


class ModelSpec(_Strict):
    """Which architecture, its size, and the options that apply to it.

    `cell` picks the recurrent layer of `bidirectional` and `seq2seq`; the
    stacked kinds (`simple_rnn`, `lstm`, `gru`) are their own cell.
    """

    kind: str = Field(
        "gru",
        description="The architecture: `mlp`, `simple_rnn`, `lstm`, `gru`, "
        "`bidirectional` or `seq2seq`. The default, `gru`, is what `rnnflow train` "
        "runs too: the best default kind measured (bench/README.md).",
    )
    units: list[PositiveInt] = Field(
        default_factory=lambda: [32],
        min_length=1,
        description="Units of each stacked layer (`seq2seq`: the encoder; its "
        "decoder has `units[-1]`).",
    )
    cell: Literal["simple_rnn", "lstm", "gru"] = Field(
        "lstm", description="The recurrent layer of `bidirectional` and `seq2seq`."
    )
    merge_mode: Literal["concat", "sum", "mul", "ave"] = Field(
        "concat", description="How `bidirectional` joins its two directions."
    )
    attention: Literal["none", "dot", "additive"] = Field(
        "none", description="`seq2seq` decoder attention: Luong (dot), Bahdanau."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on layer inputs.")
    recurrent_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the recurrent state (keeps LSTM/GRU off cuDNN).",
    )
    layer_norm: bool = Field(
        False, description="LayerNormalization after each recurrent layer."
    )
    activation: Literal[
        "tanh", "relu", "sigmoid", "elu", "selu", "gelu", "softsign", "linear"
    ] = Field("tanh", description="Recurrent cells' output activation.")
    skip: Literal["none", "linear", "shared", "auto"] = Field(
        "auto",
        description="A linear map of the window added to the network's forecast, "
        "starting at the least-squares fit on the training windows (the network's "
        "head starts at zero). `linear`: from the whole flattened window; "
        "`shared`: from each target's own window, one map for every target "
        "(targets must be features); `auto`: whichever of the two has the lower "
        "validation MSE (`linear` when a target is not a feature); `none`: the "
        "network alone.",
    )
    window_norm: Literal["none", "last", "revin", "auto"] = Field(
        "none",
        description="Normalize each input window by its own level and undo it "
        "on the forecast: `last` subtracts the window's last value (a zero "
        "network is persistence), `revin` its mean and std. Only target columns "
        "are shifted; every target must be an input feature. `auto`: the mode "
        "whose least-squares linear fit has the lowest validation MSE (`none` "
        "when a target is not a feature; the linear proxy can choose wrong: on "
        "fertility it picks `last`: MASE 1.01, against 0.61 with revin, both "
        "with MSE). Unset on a panel (`data.id_column`): `revin` "
        "(bench/competitions.py, docs/panels.md).",
    )

    ensemble: PositiveInt = Field(
        1,
        description="Networks trained (seeds `train.seed`, +1, ...), each on the same "
        "windows in its own order; the model's forecast is the median of theirs, "
        "and it is evaluated, logged and served as one model. Training costs N "
        "times one network's; each member's test scores are logged "
        "(`member_<i>_test_*`).",
    )
    combine: list[Literal["ets", "theta"]] | Literal["auto"] = Field(
        default_factory=list,
        description="A panel: serve the mean of the network's forecast and these "
        "classical models fitted on each series' own rows (a forecast combination, "
        "as the competitions' winners did). The run's `test_*` scores are the "
        "combination's, the network alone's are `network_test_*`; intervals and "
        "quantiles move with the point forecast. []: the network alone. `auto`: "
        "`[theta]`, unless the network alone scores a clearly lower MASE on the "
        "validation split (by more than two standard errors of the per-series "
        "difference; tag `auto_combine`). Unset on a panel whose inputs are its targets "
        "alone (no covariates, `data.transform` or `data.stream`): `auto`. Helps on "
        "short seasonal panels (M1, M3), hurts where Theta is poor (fertility); "
        "docs/panels.md, \"Combining the network with classical models\".",
    )
    id_embedding: NonNegativeInt = Field(
        0,
        description="A panel: learn this many numbers per series (a series-id "
        "embedding), given to the network beside its window at every step, so "
        "series that look alike after scaling can still behave differently. "
        "0: none. Only series seen in training can be forecast (as always).",
    )

    quantiles: list[float] | None = Field(
        None,
        description="Forecast these quantile levels (e.g. `[0.1, 0.5, 0.9]`, "
        "increasing, in (0, 1)) with a head that cannot cross, trained on the "
        "pinball loss; the median (always forecast) is the point forecast. "
        "Central intervals are the symmetric pairs (0.1 and 0.9: 80 %). Unset: "
        "a point forecast, with conformal intervals (`evaluate.intervals`).",
    )

    @field_validator("quantiles")
    @classmethod
    def _quantile_levels(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("expected at least one level (unset it for none)")
        outside = [v for v in value if not 0 < v < 1]
        if outside:
            raise ValueError(f"expected levels strictly between 0 and 1 ({outside} are not)")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("expected strictly increasing levels")
        return value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in MODEL_KINDS:
            raise ValueError(f"expected one of {sorted(MODEL_KINDS)}")
        return value


class TrainSpec(_Strict):
    """Optimisation: Adam on MSE, early stopping on validation loss."""

    epochs: PositiveInt = Field(
        200, description="Most epochs; early stopping usually ends sooner."
    )
    batch_size: PositiveInt = Field(32, description="Windows per training step.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's learning rate.")
    loss: Literal["mse", "mae"] = Field(
        "mse",
        description="What training minimizes on the scaled targets: `mse`, or `mae` "
        "(robust to a few wild series; closer to what MASE and sMAPE score). A "
        "quantile model always trains on the pinball loss. Unset on a panel: "
        "`mae` (M1 and fertility, docs/panels.md).",
    )
    seed: int = Field(
        42, description="Seeds Python, NumPy, TensorFlow and the window shuffle."
    )
    patience: int = Field(
        20, ge=0, description="Epochs without val_loss improvement; 0 disables."
    )
    shuffle: bool = Field(
        True, description="Shuffle the training windows every epoch."
    )
    clipnorm: float | None = Field(None, gt=0, description="Clip each gradient's norm.")
    clipvalue: float | None = Field(None, gt=0, description="Clip gradient values.")
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "auto", description="`auto`: mixed_float16 on a GPU, float32 otherwise."
    )
    verbose_every: int = Field(
        10, ge=0, description="Print progress every N epochs; 0 is quiet."
    )
    loop: Literal["auto", "compiled", "fit"] = Field(
        "auto",
        description="Training loop. `compiled`: every window in memory, one "
        "compiled call per epoch (several times faster on small series); `fit`: "
        "Keras `model.fit` over the streamed tf.data pipeline; `auto`: compiled "
        "when the windows take at most 512 MiB.",
    )
    xla: Literal["auto", "on", "off"] = Field(
        "auto",
        description="XLA (`jit_compile`) for the compiled loop's training step. "
        "`auto`: on a CPU, when the training split has at least 10,000 windows "
        "and the model has no SimpleRNN or Bidirectional layer (compiling costs "
        "seconds; it paid only there, see bench/README.md). Ignored by the `fit` "
        "loop and under mixed_float16.",
    )
    refit: bool = Field(
        False,
        description="After early stopping and the test score, train the network "
        "again from its first weights on every row (training, validation and "
        "test) for the best epoch's count, and log and serve that one: what a "
        "competition entry does, so the forecast reads the newest rows' "
        "patterns. The run's test scores stay those of the model before the "
        "refit (the refit one has seen the test rows); its intervals keep that "
        "model's calibration. Not with `model.ensemble` > 1.",
    )
    resume: bool = Field(
        True,
        description="Save the training state after every epoch and, when the same "
        "training was killed before it finished, go on from its last epoch. "
        "false: start from epoch 1 (and save nothing).",
    )
    deterministic: bool = Field(
        False,
        description="TensorFlow's op determinism (bit-identical reruns, also on a "
        "GPU, at some speed cost). Process-wide once on.",
    )
    devices: PositiveInt | Literal["all"] = Field(
        1,
        description="Train one model data-parallel on this many of the machine's "
        "devices (GPUs, else CPUs), or `all`: a copy per device, each global batch "
        "(`batch_size`) split between them (tf.distribute.MirroredStrategy). Trains "
        "with the `fit` loop. One machine only.",
    )
    steps_per_execution: PositiveInt | Literal["auto"] = Field(
        "auto",
        description="Training steps per call into TensorFlow's graph under the "
        "`fit` loop, so Python's per-step cost is paid once per N steps (the "
        "same steps, the same weights). `auto`: 32 (an LSTM(32) at batch 128: "
        "3.6 ms a step against 4.3-8.0 one step per call; bench/README.md, "
        "\"Side by side with NeuralForecast\"), 1 with `train.devices` (Keras "
        "fails on several steps per call under a distribution strategy). The "
        "compiled loop runs a whole epoch per call anyway.",
    )
    windows_per_series: PositiveInt | None = Field(
        None,
        description="A panel: train on at most this many windows of each series "
        "per epoch, drawn anew every epoch, so long series do not drown short "
        "ones. Trains with the streamed `fit` loop. Unset: every window.",
    )

    @model_validator(mode="after")
    def _devices_train_with_fit(self) -> "TrainSpec":
        if self.devices != 1 and self.loop == "compiled":
            raise ValueError(
                f"`train.devices: {self.devices}` trains under a distribution "
                "strategy, which the compiled loop does not run: use `train.loop: "
                "fit` or `auto`"
            )
        return self

    @model_validator(mode="after")
    def _one_step_per_call_on_devices(self) -> "TrainSpec":
        if self.devices != 1 and self.steps_per_execution not in ("auto", 1):
            raise ValueError(
                f"`train.steps_per_execution: {self.steps_per_execution}` with "
                f"`train.devices: {self.devices}`: Keras runs one step per call "
                "under a distribution strategy; leave it `auto`"
            )
        return self

    @model_validator(mode="after")
    def _capped_epochs_stream(self) -> "TrainSpec":
        if self.windows_per_series and self.loop == "compiled":
            raise ValueError(
                "`train.windows_per_series` draws each epoch's windows in the "
                "streamed pipeline: use `train.loop: fit` or `auto`"
            )
        return self


class BacktestSpec(_Strict):
    """Rolling-origin evaluation: `folds` test blocks, the last one the test split.

    Fold k's test block ends `(folds - 1 - k) * step` rows before the series
    does; its validation and training rows are the ones just before it, and
    the normalizer is fitted on that fold's training rows alone. `expanding`
    keeps every fold's training start at row 0; `sliding` moves it by `step`
    so every fold trains on as many rows as the first.
    """

    folds: int = Field(
        0, ge=0, description="0 or 1: off; N >= 2: N folds, each retrained."
    )
    step: PositiveInt | None = Field(
        None,
        description="Rows between fold origins; default the test split's length "
        "(back-to-back test blocks).",
    )
    window: Literal["expanding", "sliding"] = Field(
        "expanding",
        description="`expanding`: every fold trains from row 0; `sliding`: on as "
        "many rows as the first fold.",
    )


class EvaluateSpec(_Strict):
    """How the test split is scored beyond the default baselines."""

    season: PositiveInt | None = Field(
        None,
        description="Season length in rows: adds the seasonal naive baseline "
        "(repeat the value one season before). Needs input_width >= season.",
    )
    classical: list[Literal["ets", "theta", "arima"]] | None = Field(
        None,
        description="Classical baselines scored beside every network, fitted once "
        "on the training rows (a panel: on each series' own) and run forward "
        "over the scored windows without refitting: statsmodels ETS, Theta and "
        "ARIMA. Unset: all three on one series; ETS and Theta on a panel (ARIMA "
        "per series costs the most; name it to get it). `[]` skips them.",
    )
    def classical_models(self, panel: bool) -> tuple[str, ...]:
        """`classical` with its default resolved for one series or a panel."""
        if self.classical is not None:
            return tuple(self.classical)
        return ("ets", "theta") if panel else ("ets", "theta", "arima")

    intervals: list[float] = Field(
        default_factory=lambda: [0.8, 0.95],
        description="Central prediction-interval levels, conformally calibrated on "
        "the validation split's errors per horizon step and target; the test "
        "split reports coverage, width and interval score for each. `[]`: none.",
    )
    calibration: Literal["conformal", "none"] = Field(
        "conformal",
        description="`conformal`: intervals calibrated on the validation "
        "split's windows, per horizon step and target (a point model's from its "
        "errors; a quantile model's pairs widened or narrowed until they cover "
        "their level there). `none`: a quantile model's own quantiles as they "
        "are, and no intervals for a point model.",
    )
    backtest: BacktestSpec = Field(default_factory=BacktestSpec)
    rank_by: Literal["mse", "mae", "mse_raw", "mae_raw", "mase", "smape", "nd"] | None = (
        Field(
            None,
            description="The test metric `compare` ranks by, lower is better. "
            "Unset: `mase` for a panel (scale-free, each series counts alike), "
            "`mse` (normalized) otherwise.",
        )
    )

    @field_validator("intervals")
    @classmethod
    def _levels_in_order(cls, value: list[float]) -> list[float]:
        if not all(0 < v < 1 for v in value):
            raise ValueError("expected levels strictly between 0 and 1")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("expected strictly increasing levels")
        return value


class TrackingSpec(_Strict):
    """Where runs go. `uri` falls back to MLFLOW_TRACKING_URI, then mlruns/."""

    uri: str | None = Field(
        None,
        description="MLflow tracking URI. Unset: `MLFLOW_TRACKING_URI`, else the "
        "project's `mlruns/mlflow.db`.",
    )
    experiment: str | None = Field(
        None, description="MLflow experiment name; default the experiment's name."
    )

    @field_serializer("uri", when_used="json")
    def _redacted_uri(self, value: str | None) -> str | None:
        return redact_url(value) if value else value

    registered_model: str | None = Field(
        None,
        description="Registered model that `rnnflow retrain` versions and whose "
        "`champion` alias it moves; default the experiment's name.",
    )
    run_label: str | None = Field(
        None,
        description="Added to a training run's name in the MLflow UI, so runs of "
        "one experiment can be told apart (`gru · default · train.epochs=30`). The "
        "CLI sets it to the command line's overrides (but `tracking.*`) when unset.",
    )


class RetrainSpec(_Strict):
    """The champion/challenger gate of `rnnflow retrain`."""

    min_improvement: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Relative holdout-MSE improvement a challenger needs over the "
        "champion to be promoted (0.05 = 5 % lower). It must also beat persistence.",
    )
    wait_seconds: float = Field(
        60.0,
        ge=1.0,
        description="How long a retraining waits for another one of the same "
        "registered model to finish before it is skipped (at least 1 s: one "
        "request to the Prefect API).",
    )
    metric: Literal["mse", "wql", "interval_score"] = Field(
        "mse",
        description="What the challenger must beat the champion on, on the "
        "holdout: `mse` of the point forecasts, or `wql` (weighted quantile "
        "loss) / `interval_score` (mean over the central intervals) of the "
        "quantiles both serve. It must beat persistence on MSE in every case.",
    )
    warm_start: bool = Field(
        False,
        description="Start the challenger from the champion's weights and train "
        "it `retrain.warm_epochs` epochs on the new data (same gate), instead of "
        "from scratch. Falls back to a cold start, saying why, when the champion's "
        "network has other shapes (another kind, width, window or inputs).",
    )
    warm_epochs: PositiveInt | None = Field(
        None,
        description="Epochs of a warm start (early stopping still applies). "
        "Unset: a quarter of `train.epochs`, at least 1.",
    )
    warm_learning_rate: float | None = Field(
        None,
        gt=0.0,
        description="Learning rate of a warm start. Unset: `train.learning_rate`.",
    )
    max_coverage_error: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Refuse a challenger whose calibrated intervals miss their "
        "level on the holdout by more than this (0.1: the 80 % interval must "
        "cover 70-90 % of the holdout). Unset: coverage is logged, not gated.",
    )


class ForecastSpec(_Strict):
    """Where `rnnflow forecast` keeps every forecast it makes."""

    store: str | None = Field(
        None,
        description="Folder of the forecast store (a Parquet dataset, one "
        "`origin=<time>` partition per forecast origin). Unset: "
        "`forecasts/<experiment>` beside the MLflow store (a sqlite store's "
        "folder, else the project's `mlruns/`).",
    )


class MonitorSpec(_Strict):
    """What `rnnflow monitor` scores and when it starts a retrain."""

    window: PositiveInt = Field(
        20,
        description="Score the kept forecasts of this many most recent origins "
        "that have actuals (a rolling window).",
    )
    max_degradation: float | None = Field(
        0.25,
        gt=0.0,
        description="Start a retrain when the window's MASE is this much above the "
        "champion's holdout `test_mase` (0.25: 25 % worse; seasonal naive's MASE "
        "on the same rows when the model has none). Unset: never for accuracy.",
    )
    max_coverage_error: float | None = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Start a retrain when an interval's coverage misses its level "
        "by more than this (0.1: the 80 % interval covers under 70 % or over "
        "90 %). Unset: never for coverage.",
    )
    min_rows: PositiveInt = Field(
        10,
        description="Decide nothing on fewer scored forecasts (series x steps x "
        "targets with an actual) than this.",
    )
    retrain: bool = Field(
        True,
        description="Start the retrain when a bound is crossed (through the "
        "`retrain-NAME` deployment when one exists, else here); false: report only.",
    )


class ClusterSpec(_Strict):
    """Where the many-model work of one run goes: backtest folds, tune
    trials and the per-series classical references of a panel (compare
    children take `rnnflow compare --executor dask`)."""

    executor: Literal["local", "dask"] = Field(
        "local",
        description="`local`: folds and tune trials one after another here, "
        "references in processes of this machine; `dask`: all three on a Dask "
        "cluster (`address`, else a local cluster of `workers` processes started "
        "for the run; tune runs `workers` trials at a time, unpruned).",
    )
    address: str | None = Field(
        None,
        description="A running Dask scheduler, `tcp://host:8786`. Its workers need "
        "rnnflow installed and the MLflow store and the `backtest-cache` folder "
        "reachable (docs/operations.md).",
    )
    workers: PositiveInt = Field(
        2, description="Processes of the local Dask cluster when `address` is unset."
    )

    @property
    def on_dask(self) -> bool:
        return self.executor == "dask"


class ExperimentConfig(_Strict):
    """One complete, validated experiment."""

    name: str = Field(
        "default",
        description="The experiment's name: its MLflow experiment and registered "
        "model unless `tracking` says otherwise.",
    )
    data: DataSpec = Field(default_factory=DataSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    window: WindowSpec = Field(default_factory=WindowSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    forecast: ForecastSpec = Field(default_factory=ForecastSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)

    @model_validator(mode="after")
    def _transform_needs_adjacent_targets(self) -> "ExperimentConfig":
        if self.data.transform != "none" and self.window.offset:
            raise ValueError(
                f"`data.transform: {self.data.transform}` needs `window.offset: 0` "
                f"(got {self.window.offset}): levels are re-integrated from the "
                "last input row"
            )
        return self

    @model_validator(mode="after")
    def _quantiles_of_levels(self) -> "ExperimentConfig":
        if self.model.quantiles and self.data.transform != "none":
            raise ValueError(
                f"`model.quantiles` cannot be combined with `data.transform: "
                f"{self.data.transform}`: quantiles of the step changes do not add "
                "up to quantiles of the levels. Use `model.window_norm: last` for "
                "a drifting series instead"
            )
        return self

    @model_validator(mode="after")
    def _gate_metric_needs_quantiles(self) -> "ExperimentConfig":
        served = self.model.quantiles or (
            self.evaluate.intervals and self.evaluate.calibration == "conformal"
        )
        if self.retrain.metric != "mse" and not served:
            raise ValueError(
                f"`retrain.metric: {self.retrain.metric}` scores the quantiles a "
                "model serves: set `model.quantiles`, or `evaluate.intervals` with "
                "`evaluate.calibration: conformal`"
            )
        return self

    @model_validator(mode="after")
    def _panel_defaults(self) -> "ExperimentConfig":
        # Series of a panel drift away from their training statistics at
        # different speeds and differ in scale by orders of magnitude: each
        # window scaled by its own level (revin) and an absolute-error loss
        # won on every panel measured (M1's three subsets, fertility; see
        # docs/panels.md "Defaults"), where `auto`'s linear proxy chose wrong.
        if self.data.is_panel and "window_norm" not in self.model.model_fields_set:
            features, targets = self.data.features, self.data.targets
            inputs = not features or (
                targets is not None and set(targets) <= set(features)
            )
            # a target that is not an input has no level in the window: `auto`
            # then resolves to `none`
            self.model.window_norm = "revin" if inputs else "auto"
        if self.data.is_panel and "loss" not in self.train.model_fields_set:
            self.train.loss = "mae"
        # The mean with per-series Theta won on M1 and M3 and lost badly on
        # fertility (docs/panels.md): let the validation split decide. Only where
        # the network reads its targets alone (Theta cannot see a covariate).
        data = self.data
        covariates = data.known or data.static or data.calendar or (
            data.features and set(data.features) - set(data.targets or [])
        )
        plain = data.transform == "none" and not data.stream and not covariates
        if data.is_panel and plain and "combine" not in self.model.model_fields_set:
            self.model.combine = "auto"
        return self

    @model_validator(mode="after")
    def _refit_trains_one_network(self) -> "ExperimentConfig":
        if self.train.refit and self.model.ensemble > 1:
            raise ValueError(
                f"`train.refit` retrains one network, and `model.ensemble` is "
                f"{self.model.ensemble}: set one of them (refitting an ensemble "
                "is not supported yet)"
            )
        return self

    @model_validator(mode="after")
    def _streamed_panels_take_what_streams(self) -> "ExperimentConfig":
        if not self.data.stream:
            return self
        data = self.data
        if not isinstance(data.id_column, str) or not data.time_column:
            raise ValueError(
                "`data.stream` reads a long panel: set `data.id_column` (one "
                "column) and `data.time_column`"
            )
        if not data.targets:
            raise ValueError("`data.stream` needs `data.targets` (the columns to forecast)")
        if ":" in data.path.split("/")[0] and not data.path.startswith("/"):
            raise ValueError(
                f"`data.stream` reads a local Parquet file or folder, not {data.path!r}"
            )
        if "short_series" not in data.model_fields_set:
            data.short_series = "skip"  # padding needs the series' rows in memory
        explicit = {
            "data.features": data.features and set(data.features) != set(data.targets),
            "data.known": data.known, "data.static": data.static,
            "data.calendar": data.calendar,
            "data.transform": data.transform != "none",
            "data.missing": data.missing != "error",
            "data.short_series: pad": data.short_series == "pad",
            "model.id_embedding": self.model.id_embedding,
            "model.quantiles": self.model.quantiles,
            "model.ensemble": self.model.ensemble > 1,
            "model.combine": self.model.combine,
            "train.refit": self.train.refit,
            "train.loop: compiled": self.train.loop == "compiled",
            "train.devices": self.train.devices != 1,
            "evaluate.backtest": self.evaluate.backtest.folds > 1,
            "evaluate.classical": bool(self.evaluate.classical),
            # the default levels are left out quietly (docs say so); others refused
            "evaluate.intervals": self.evaluate.intervals not in ([], [0.8, 0.95]),
        }  # fmt: skip
        refused = [name for name, used in explicit.items() if used]
        if refused:
            raise ValueError(
                f"`data.stream` does not stream {', '.join(refused)} yet: unset "
                "them, or train in memory (`data.stream: false`)"
            )
        return self

    @model_validator(mode="after")
    def _combination_needs_a_panel(self) -> "ExperimentConfig":
        if self.model.combine and not self.data.is_panel:
            raise ValueError(
                f"`model.combine: {self.model.combine}` averages the network with "
                "models fitted on each series of a panel: set `data.id_column` or "
                "`data.layout: panel`, or unset it"
            )
        if self.model.combine and self.data.transform != "none":
            raise ValueError(
                "`model.combine` averages forecasts of the levels: it needs "
                f"`data.transform: none` (got {self.data.transform})"
            )
        return self

    @model_validator(mode="after")
    def _series_embedding_needs_a_panel(self) -> "ExperimentConfig":
        if self.model.id_embedding and not self.data.is_panel:
            raise ValueError(
                f"`model.id_embedding: {self.model.id_embedding}` embeds each "
                "series of a panel: set `data.id_column` (a long table) or "
                "`data.layout: panel` (a wide one), or unset it"
            )
        return self

    @model_validator(mode="after")
    def _season_fits_the_window(self) -> "ExperimentConfig":
        season = self.evaluate.season
        if season and season > self.window.input_width:
            raise ValueError(
                f"`evaluate.season` ({season}) must not exceed `window.input_width` "
                f"({self.window.input_width}): the seasonal naive forecast reads the "
                "value one season back from inside the window"
            )
        return self

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment this config logs to."""
        return self.tracking.experiment or self.name

    @property
    def rank_metric(self) -> str:
        """The leaderboard's sort key: `test_<evaluate.rank_by>`."""
        chosen = self.evaluate.rank_by or ("mase" if self.data.is_panel else "mse")
        return f"test_{chosen}"

    @property
    def registered_model_name(self) -> str:
        """The registered model `rnnflow retrain` versions."""
        return self.tracking.registered_model or self.name

    def training_fields(self) -> dict:
        """The settings that decide what a training produces (data, split,
        window, model, train), without where it is logged or how it is
        reported: what a checkpoint or a cached result is keyed on."""
        return self.model_dump(
            mode="json",
            exclude={
                "tracking": True,
                "retrain": True,
                "forecast": True,
                "monitor": True,
                "cluster": True,
                "evaluate": True,
                "train": {"verbose_every", "resume"},
            },
        )
