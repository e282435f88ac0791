"""`rnnflow` command line: a thin layer over the flows.

Only the standard library is imported at module level, so `rnnflow --help`
answers without loading TensorFlow, Prefect or MLflow.
"""

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rnnflow` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # Prefect's temporary server sends usage telemetry, and on a machine with no
    # internet logs an ERROR for it in a run that succeeded.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = _parser()
    args = _parse(parser, argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    if getattr(args, "servable", False) and not (
        args.local or os.environ.get("RNNFLOW_LOCAL")
    ):
        from flows.server import ServerGone, ensure_server, submit

        server = ensure_server()  # stdlib only until here
        if server:
            print(f"(running on rnnflow server {server['url']})", file=sys.stderr)
            try:
                return submit(server, argv)
            except ServerGone as gone:
                print(f"({gone}; running here)", file=sys.stderr)
            except KeyboardInterrupt:  # the server sees us leave and stops it
                print(
                    "interrupted: the command stops on the rnnflow server too; its "
                    "MLflow run ends KILLED and the same command resumes it",
                    file=sys.stderr,
                )
                return 130
    if getattr(args, "servable", False) and not os.environ.get("PREFECT_API_URL"):
        from flows.prefect_server import find_api

        if api := find_api():  # a lasting Prefect server: no temporary one to start
            os.environ["PREFECT_API_URL"] = api
    from components.common.errors import RnnflowError

    try:
        return args.handler(args)
    except RnnflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: the MLflow run (if any) ends KILLED", file=sys.stderr)
        return 130
    except BaseException as exc:  # Prefect turns SIGTERM into TerminationSignal
        signum = getattr(exc, "signal", None)
        if isinstance(exc, Exception) or signum is None:
            raise
        print(
            f"stopped by signal {signum}: the MLflow run ends KILLED", file=sys.stderr
        )
        return 128 + int(signum)


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse, letting KEY=VALUE overrides come after options too.

    argparse cannot interleave a `nargs="*"` positional with options
    (`compare x --models a,b train.epochs=1`), so leftovers that look like
    overrides are folded into `overrides`; anything else is an error.
    """
    args, extra = parser.parse_known_args(argv)
    stray = [token for token in extra if "=" not in token or token.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnflow",
        description="Train, compare and retrain recurrent networks; every run "
        "is a Prefect flow logged to MLflow.",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="run here even when an `rnnflow server` is running (also RNNFLOW_LOCAL=1)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Prefect's and MLflow's full logs (also RNNFLOW_VERBOSE=1)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train one experiment end to end",
        description="Train one experiment: ingest, split, normalize, window, build, "
        "train, evaluate, log to MLflow.",
        epilog="example: rnnflow train gas_furnace model.kind=gru train.epochs=50",
    )
    _add_experiment_args(train, with_json=True)
    train.set_defaults(handler=_train, servable=True)

    compare = commands.add_parser(
        "compare",
        help="train several architectures on the same data and rank them",
        description="One parent MLflow run, one child run per model and seed, and a "
        "leaderboard with the persistence and linear baselines as rows.",
        epilog="example: rnnflow compare gas_furnace --models mlp,lstm,gru --seeds 3",
    )
    _add_experiment_args(compare, with_json=True)
    compare.add_argument(
        "--models",
        default="mlp,simple_rnn,lstm,gru,bidirectional,seq2seq",
        help="comma-separated model kinds (default: all)",
    )
    compare.add_argument("--seeds", type=int, default=1, help="seeds per model")
    compare.add_argument(
        "--executor",
        choices=("sequential", "dask"),
        default=None,
        help="sequential: one child after another; dask: every child in its own "
        "Dask worker process, through Prefect's Dask task runner (default: dask "
        "when the experiment's `cluster.executor` is dask, else sequential)",
    )
    compare.add_argument(
        "--dask-address",
        metavar="ADDRESS",
        help="an existing Dask scheduler (tcp://host:8786); default: "
        "`cluster.address`, else a local cluster",
    )
    compare.add_argument(
        "--dask-workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default `cluster.workers`, 2)",
    )
    compare.set_defaults(handler=_compare, servable=True)

    tune = commands.add_parser(
        "tune",
        help="search one architecture's hyperparameters with Optuna",
        description="Search units, layers, dropout, learning rate and input width "
        "(the space is in README.md) on the validation split, every trial a nested "
        "MLflow run, pruning trials that fall behind; write the best settings as a "
        "new experiment file. The test split is never scored.",
        epilog="example: rnnflow tune gas_furnace --model gru --trials 30 "
        "train.epochs=100",
    )
    _add_experiment_args(tune, with_json=True)
    tune.add_argument("--model", required=True, metavar="KIND", help="model kind")
    tune.add_argument("--trials", type=int, default=20, help="trials (default 20)")
    tune.add_argument(
        "--output",
        metavar="PATH",
        help="experiment file to write (default conf/experiments/"
        "<experiment>_<kind>_tuned.yaml)",
    )
    tune.set_defaults(handler=_tune, servable=True)

    retrain = commands.add_parser(
        "retrain",
        help="retrain once; promote the new model only if it beats the champion",
        description="Train a challenger on the newest data, score it and the "
        "registered champion on the same recent holdout, register it, and move the "
        "`champion` alias only when it is better (and beats persistence).",
        epilog="example: rnnflow retrain gas_furnace retrain.min_improvement=0.02",
    )
    _add_experiment_args(retrain, with_json=True)
    retrain.set_defaults(handler=_retrain, servable=True)

    predict = commands.add_parser(
        "predict",
        help="forecast the next steps with a logged or registered model",
        description="Forecast the horizon after the last rows of the input, in "
        "original units, with the packaged model (default: the champion).",
        epilog="example: rnnflow predict gas_furnace --input latest.csv",
    )
    _add_model_args(predict)
    predict.add_argument(
        "--input",
        help="CSV or Parquet of raw observations (default: the experiment's data)",
    )
    predict.add_argument("--output", help="write the forecast as CSV here")
    predict.set_defaults(handler=_predict, servable=True)

    forecast = commands.add_parser(
        "forecast",
        help="forecast every series from the newest data into the forecast store",
        description="Forecast the horizon after every series' last row with the "
        "champion (or --model-uri), keep the rows in the forecast store (a Parquet "
        "dataset, one partition per origin; a rerun replaces that origin's rows) "
        "and log an MLflow run (rnnflow.role: forecast).",
        epilog="example: rnnflow forecast fertility --as-of 2005",
    )
    _add_model_args(forecast)
    forecast.add_argument(
        "--as-of",
        help="forecast as of this past time (the time column's kind: a year, a "
        "date) from the rows up to it only: a backfill; START..END forecasts at "
        "every time of the data in that range",
    )
    forecast.set_defaults(handler=_forecast, servable=True)

    monitor = commands.add_parser(
        "monitor",
        help="score kept forecasts against the actuals; retrain when they drift",
        description="Join the forecast store with the actuals that have arrived: "
        "MASE, MAE and interval coverage over the last `monitor.window` origins, "
        "against seasonal naive on the same rows and the champion's holdout "
        "MASE; log an MLflow run (rnnflow.role: monitor) and start a retrain "
        "when `monitor.max_degradation` or `monitor.max_coverage_error` is "
        "crossed (through the retrain deployment when one exists).",
        epilog="example: rnnflow monitor fertility",
    )
    _add_experiment_args(monitor, with_json=True)
    monitor.add_argument(
        "--no-retrain", action="store_true",
        help="report only, whatever the figures say (as `monitor.retrain=false`)",
    )  # fmt: skip
    monitor.set_defaults(handler=_monitor, servable=True)

    deploy = commands.add_parser(
        "deploy",
        help="schedule retraining, forecasts and monitoring as lasting Prefect "
        "deployments",
        description="Register deployments retrain-NAME, forecast-NAME and "
        "monitor-NAME (each on its cron, one run at a time) and train-NAME (by "
        "hand) in work pool `rnnflow` on a Prefect server that outlives this "
        "command (PREFECT_API_URL, else rnnflow's own, started once), start a "
        "worker for the pool when none runs, and return. Flow runs start in "
        "this directory with this shell's MLFLOW_*/RNNFLOW_* variables.",
        epilog='example: rnnflow deploy gas_furnace --cron "0 3 * * 0" '
        '--forecast-cron "0 6 * * *" --monitor-cron "0 7 * * *"',
    )
    _add_experiment_args(deploy)
    deploy.add_argument(
        "--cron", "--retrain-cron", dest="cron",
        help='when to retrain (cron, e.g. "0 3 * * 0")',
    )  # fmt: skip
    deploy.add_argument("--forecast-cron", help="when to forecast into the store")
    deploy.add_argument("--monitor-cron", help="when to monitor against the actuals")
    deploy.add_argument("--timezone", default="UTC", help="IANA time zone of the crons")
    deploy.set_defaults(handler=_deploy)

    prefect = commands.add_parser(
        "prefect",
        help="start, show or stop the Prefect server and worker rnnflow keeps",
        description="rnnflow's own Prefect server (127.0.0.1:4210, its own "
        "database under ~/.cache/rnnflow/prefect) and the worker of pool "
        "`rnnflow` keep running after the commands that started them, so "
        "deployments and their schedules last. Commands use PREFECT_API_URL "
        "when set, else this server, else one on 127.0.0.1:4200.",
        epilog="example: rnnflow prefect status",
    )
    prefect.add_argument("action", choices=("start", "status", "stop"))
    prefect.set_defaults(handler=_prefect)

    show = commands.add_parser(
        "show", help="print the resolved config of an experiment, without running it"
    )
    _add_experiment_args(show)
    show.set_defaults(handler=_show)

    data = commands.add_parser("data", help="data utilities (snapshot)")
    data_commands = data.add_subparsers(title="data commands", metavar="COMMAND")
    snap = data_commands.add_parser(
        "snapshot",
        help="store an experiment's validated data as a versioned TFDS dataset",
        description="Ingest and validate the experiment's data, then write it with "
        "tensorflow-datasets' builder so runs can be repeated on exactly these rows.",
    )
    _add_experiment_args(snap)
    snap.add_argument("--name", help="dataset name (default: the experiment's name)")
    snap.add_argument("--version", default="1.0.0", help="semantic version, e.g. 1.0.0")
    snap.add_argument(
        "--tfds-dir", help="TFDS data_dir (default: data.tfds_dir, else TFDS' default)"
    )
    snap.set_defaults(handler=_snapshot)

    server = commands.add_parser(
        "server",
        help="keep one warm process (and a Prefect server) for the next commands",
        description="Start a Prefect server on 127.0.0.1 (or use PREFECT_API_URL), "
        "import TensorFlow, MLflow and Prefect once, and run every later `rnnflow "
        "train|compare|retrain|tune|predict|forecast|monitor` from this machine here: no start-up tax. "
        "Optionally the MLflow UI too. Ctrl-C stops all of it.",
        epilog="example: rnnflow server --ui-port 5000 &  then  rnnflow train gas_furnace",
    )
    server.add_argument(
        "action", nargs="?", choices=("start", "status", "stop"), default="start",
        help="start (default: in the foreground), status, or stop the server of "
        "this checkout (the one `rnnflow` starts on first use, or yours)",
    )
    server.add_argument(
        "--daemon", action="store_true",
        help="run as the background server `rnnflow` starts on first use: stop "
        "after RNNFLOW_SERVER_IDLE seconds (1800) without a command",
    )  # fmt: skip
    server.add_argument("--port", type=int, default=0, help="default: any free port")
    server.add_argument(
        "--prefect-port", type=int, default=None,
        help="port of rnnflow's Prefect server when it must start one "
        "(default 4210, RNNFLOW_PREFECT_PORT)",
    )  # fmt: skip
    server.add_argument(
        "--ui-port", type=int, default=None, help="also serve the MLflow UI here"
    )
    server.set_defaults(handler=_server)

    ui = commands.add_parser("ui", help="open the MLflow UI on the project's store")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; MLflow has no authentication)",
    )
    ui.set_defaults(handler=_ui)
    return parser


def _add_experiment_args(
    parser: argparse.ArgumentParser, with_json: bool = False
) -> None:
    parser.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help="name under conf/experiments/ or path to a YAML file (default: default)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides with YAML values, e.g. train.epochs=50",
    )
    if with_json:
        parser.add_argument(
            "--json",
            action="store_true",
            help="print one JSON object as the last line",
        )


def _load(args):
    from components.config.loading import load_experiment, with_settings

    experiment, overrides = _experiment_and_overrides(args)
    config = load_experiment(experiment, overrides)
    label = " ".join(o for o in overrides if not o.startswith("tracking."))
    if label and config.tracking.run_label is None:  # runs told apart in the UI
        config = with_settings(config, {"tracking.run_label": label[:100]})
    return config


def _experiment_and_overrides(args) -> tuple[str | None, list[str]]:
    overrides = list(args.overrides)
    experiment = args.experiment
    if experiment is not None and "=" in experiment:  # only overrides were given
        overrides.insert(0, experiment)
        experiment = None
    return experiment, overrides


def _show(args) -> int:
    from components.config.loading import to_yaml

    print(to_yaml(_load(args)), end="")
    return 0


def _snapshot(args) -> int:
    config = _load(args)
    if config.data.is_panel:
        from components.common.errors import ConfigError

        raise ConfigError(
            f"{config.name}: `rnnflow data snapshot` writes one series; a panel "
            "(`data.id_column` / `data.layout: panel`) is not supported yet. "
            "Keep its Parquet folder or file as the versioned source."
        )
    from flows import terminal

    terminal.quiet_tensorflow()
    from components import tracking
    from components.data import ingest, snapshot

    series = ingest.load_series(config.data)
    frame = series.frame.drop(columns=series.calendar_columns)
    name = tracking.safe_name(args.name or config.name).lower().replace("-", "_")
    directory = args.tfds_dir or config.data.tfds_dir
    info = snapshot.write_snapshot(frame, name, args.version, directory, series.digest)
    print(f"wrote {info.rows} rows to {info.directory}")
    print(f"frame digest {info.digest} (source sha256 {series.sha256})")
    print("use it in an experiment:")
    print(f"  data:\n    path: {info.data_path}")
    if directory:
        print(f"    tfds_dir: {Path(directory).expanduser().resolve()}")
    if info.time_column:
        print(f"    time_column: {info.time_column}")
    return 0


def _train(args) -> int:
    config = _load(args)  # validated at the door, before anything heavy loads
    _start_flow(args)
    from flows.train import train_flow

    result = train_flow(config)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(result.to_text())
    return 0


def _compare(args) -> int:
    from components.common.errors import ConfigError

    config = _load(args)
    models = _kinds(
        "--models", [m.strip() for m in args.models.split(",") if m.strip()]
    )
    _require_positive("--seeds", args.seeds)
    if args.dask_workers is not None and args.dask_workers < 1:
        raise ConfigError(
            f"`--dask-workers` expected a positive integer, got {args.dask_workers}."
        )
    cluster = config.cluster
    executor = args.executor or ("dask" if cluster.on_dask else "sequential")
    if args.dask_address and executor != "dask":
        raise ConfigError("`--dask-address` needs `--executor dask`.")
    _start_flow(args)
    from flows.compare import run_compare

    result = run_compare(
        config,
        models,
        args.seeds,
        executor,
        args.dask_address or cluster.address,
        args.dask_workers or cluster.workers,
    )
    return _report(result, args.json)


def _kinds(option: str, kinds: list[str]) -> list[str]:
    """`kinds` when every one is a registered model kind; else a ConfigError
    naming the option and the valid kinds."""
    from components.common.errors import ConfigError, invalid_value
    from components.models.registry import model_kinds

    unknown = [k for k in kinds if k not in model_kinds()]
    if unknown or not kinds:
        raise ConfigError(
            invalid_value(option, f"kinds from {model_kinds()}", unknown or kinds)
        )
    return kinds


def _require_positive(option: str, value: int) -> None:
    """A ConfigError naming `option` unless `value` is at least 1."""
    from components.common.errors import ConfigError, invalid_value

    if value < 1:
        raise ConfigError(invalid_value(option, "a positive integer", value))


def _tune(args) -> int:

    config = _load(args)
    _kinds("--model", [args.model])
    _require_positive("--trials", args.trials)
    _start_flow(args)
    from flows.tune import tune_flow

    result = tune_flow(config, args.model, args.trials, args.output)
    best = result.best
    states = [t["state"] for t in result.trials]
    print(
        f"parent run {result.parent_run_id} in experiment {result.experiment!r}: "
        f"{states.count('complete')} trials complete, {states.count('pruned')} "
        f"pruned, {states.count('fail')} failed\n"
        f"best trial {best['number']}: val_loss {best['value']:.4f} {best['settings']}\n"
        f"wrote {result.experiment_file}; next: rnnflow train "
        f"{result.experiment_file}"
    )
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def _retrain(args) -> int:
    config = _load(args)
    _start_flow(args)
    from flows.retrain import retrain_flow

    return _report(retrain_flow(config), args.json)


def _predict_streamed(args, config, uri: str) -> int:
    """`data.stream: true`: the panel is read file by file and the forecast
    written to a Parquet file, never held whole."""
    from components.common.errors import DataError
    from flows.train_stream import predict_streamed

    if args.input:
        raise DataError(
            "--input: a streamed panel is forecast from `data.path` (point it "
            "at the files to forecast: `rnnflow predict NAME data.path=FOLDER`)."
        )
    if not (args.output or "").endswith(".parquet"):
        raise DataError(
            "--output FILE.parquet: a streamed panel's forecast is written to a "
            f"Parquet file, shard by shard (got {args.output!r})."
        )
    found = predict_streamed(config, uri, args.model_uri, args.output, say=lambda _m: None)
    counts = ", ".join(f"{n} by {who}" for who, n in found["series"].items() if n)
    print(f"wrote the forecast of {sum(found['series'].values())} series ({counts}) "
          f"to {args.output}, run {found['run_id']}")  # fmt: skip
    if args.json:
        print(json.dumps(found, default=str))  # the origin: a time stamp or a number
    return 0


def _predict(args) -> int:
    config = _load(args)
    from flows import terminal

    terminal.quiet_tensorflow()
    from components import tracking
    from components.common.errors import DataError
    from components.data import ingest, sources

    uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(uri)
    if config.data.stream:
        return _predict_streamed(args, config, uri)
    model_uri = args.model_uri or f"models:/{config.registered_model_name}@champion"
    if args.input:
        path = Path(args.input)
        if not path.is_file():
            raise DataError(f"--input {path}: no such file.")
        frame = sources.read_table(path)
    else:
        frame = None
    from components.tracking import packaging

    forecaster = packaging.load_forecaster(model_uri, uri)
    if frame is None:  # the source itself: every series it holds
        frame, _ = forecaster.request_frame(ingest.read_raw(config.data))
    forecast = forecaster.forecast(frame)
    made_by = forecast.attrs.get("forecasters", {})
    own = forecast.attrs.get("own_statistics", [])
    if own:
        shown = ", ".join(own[:5]) + (" ..." if len(own) > 5 else "")
        print(
            f"{len(own)} series the model was not trained on forecast by the network "
            f"with their own rows' statistics: {shown}"
        )
    for who, names in made_by.items():
        if not who.startswith("network"):  # series the network could not forecast
            shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            print(
                f"{len(names)} series forecast by {who} (fewer usable rows "
                f"than the network's window): {shown}"
            )
    if args.output:
        forecast.to_csv(args.output, index=False)
        print(f"wrote {len(forecast)} rows to {args.output}")
    else:
        print(forecast.to_string(index=False))
    if args.json:
        records = json.loads(forecast.to_json(orient="records", date_format="iso"))
        print(json.dumps({"model_uri": model_uri, "forecast": records}))
    return 0


def _add_model_args(command) -> None:
    """An experiment command that forecasts with a logged or registered model."""
    _add_experiment_args(command, with_json=True)
    command.add_argument(
        "--model-uri",
        help="default models:/<tracking.registered_model>@champion",
    )


def _forecast(args) -> int:
    config = _load(args)
    _start_flow(args)
    from flows.forecast import forecast_flow

    return _report(forecast_flow(config, args.model_uri, args.as_of), args.json)


def _monitor(args) -> int:
    config = _load(args)
    _start_flow(args)
    from flows.monitor import monitor_flow

    result = monitor_flow(config, False if args.no_retrain else None)
    return _report(result, args.json)


def _deploy(args) -> int:
    from components.common.errors import ConfigError

    _load(args)  # a bad experiment is refused before any server starts
    crons = {"retrain": args.cron, "forecast": args.forecast_cron,
             "monitor": args.monitor_cron}  # fmt: skip
    if not any(crons.values()):
        raise ConfigError(
            "rnnflow deploy: give at least one schedule: --cron (retrain), "
            "--forecast-cron or --monitor-cron."
        )
    try:
        from prefect.schedules import Cron

        for flag, cron in crons.items():
            if cron:
                Cron(cron, timezone=args.timezone)
    except Exception as exc:  # Prefect's validator: pydantic or ValueError
        raise ConfigError(
            f"`--{flag}-cron {cron!r}` / `--timezone {args.timezone!r}`: expected a "
            f"five-field cron expression and an IANA time zone ({exc})."
        ) from None
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import prefect_server, terminal

    api = prefect_server.lasting_api()
    terminal.quiet_tensorflow()
    from flows.deploy import Schedules, register

    experiment, overrides = _experiment_and_overrides(args)
    with temporary_settings({PREFECT_API_URL: api}):
        names = register(
            experiment or "default", overrides, Schedules(**crons, timezone=args.timezone)
        )
    worker = prefect_server.ensure_worker(api)
    ui = api.removesuffix("/api")
    print(f"deployed on {api} (work pool {prefect_server.POOL!r}, worker pid "
          f"{worker['pid']}):")  # fmt: skip
    for name in names:
        kind = name.split("/", 1)[1].split("-", 1)[0]
        when = crons.get(kind)
        print(f"  {name}: " + (f"{when} ({args.timezone})" if when else "by hand"))
    print(f"see them in the Prefect UI: {ui}/deployments; run one now: "
          f"prefect deployment run {names[0]}")  # fmt: skip
    print("they keep running after this command; `rnnflow prefect status|stop`")
    return 0


def _prefect(args) -> int:
    from flows import prefect_server

    if args.action == "start":
        found = prefect_server.start_server()
        print(f"rnnflow's Prefect server: {found['url'].removesuffix('/api')} "
              f"(pid {found['pid']})")  # fmt: skip
    elif args.action == "stop":
        stopped = prefect_server.stop_all()
        print("stopped " + ", ".join(stopped) if stopped else
              "nothing to stop: rnnflow runs no Prefect server or worker")  # fmt: skip
    else:
        print(prefect_server.describe())
    return 0


def _server(args) -> int:
    from flows import server

    running = server.find_server()
    if args.action == "status":
        print(server.describe(running))
        return 0
    if args.action == "stop":
        if running is None:
            print("no rnnflow server runs for this checkout")
            return 0
        stopped = server.stop_server(running)
        print(f"stopped the rnnflow server (pid {running['pid']})" if stopped
              else f"pid {running['pid']} did not stop within 60 s")  # fmt: skip
        return 0 if stopped else 1
    if running:
        print(
            f"an rnnflow server already runs for this checkout: {running['url']} "
            f"(pid {running['pid']}); `rnnflow server stop` first", file=sys.stderr,
        )  # fmt: skip
        return 1
    from flows import terminal

    terminal.quiet_tensorflow()
    from flows import daemon

    code = daemon.serve(
        "127.0.0.1", args.port, args.prefect_port, args.ui_port, main, ui_command,
        idle_seconds=server.idle_seconds() if args.daemon else None,
    )  # fmt: skip
    # Every command has finished and what the server started is stopped; the
    # background threads Prefect's clients leave would keep retrying the
    # stopped Prefect server for minutes before the interpreter could exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def ui_command(host: str, port: int) -> list[str]:
    """The `mlflow ui` command line for the project's store."""
    from components.tracking.store import resolve_tracking_uri

    ns = argparse.Namespace(host=host, port=port)
    return _ui_plan(ns, resolve_tracking_uri())[0]


def _ui(args) -> int:
    from components.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri()
    command, warning = _ui_plan(args, uri)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri})", flush=True)
    os.execvp(command[0], command)
    return 0  # not reached


def _ui_plan(args, uri: str) -> tuple[list[str], str | None]:
    """The `mlflow ui` command line, and the warning a non-loopback bind needs."""
    from components.tracking.store import artifact_root

    warning = None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        warning = (
            f"binding {args.host}: MLflow has no authentication; anyone who "
            "can reach this port can read and change runs."
        )
    command = ["mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", args.host, "--port", str(args.port)]
    command += ["--workers", "1"]  # one person's UI: 4 workers start 4x slower
    if not getattr(args, "verbose", False):  # one line per HTTP request otherwise
        command += ["--uvicorn-opts", "--no-access-log --log-level warning"]
    root = artifact_root(uri)
    if root is not None:
        command += ["--default-artifact-root", root.as_uri()]
    return command, warning


def _start_flow(args) -> None:
    """Before a flow runs here, once its config is valid: TensorFlow imported
    quietly, then the terminal set up (`flows.terminal`; both import the heavy
    libraries, so a bad config is refused before either), a user error's
    traceback left out of Prefect's log lines."""
    from flows import terminal

    terminal.quiet_tensorflow()

    verbose = args.verbose or bool(os.environ.get(terminal.VERBOSE))
    terminal.prepare(verbose, sys.stderr.isatty())
    terminal.hide_user_error_tracebacks()


def _report(result, as_json: bool) -> int:
    """A flow's result as the terminal shows it, then `--json`'s last line."""
    print(result.to_text())
    if as_json:
        print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
