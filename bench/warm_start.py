"""Warm against cold retraining: the same champion, the same new rows, the
challenger trained from the champion's weights for `retrain.warm_epochs`
(`retrain.warm_start: true`) or from scratch for `train.epochs`; wall
seconds of the whole `rnnflow retrain` flow (data, training, holdout, gate,
registry) and the challenger's holdout MSE (original units) beside the
champion's on the same holdout.

Per experiment: a champion is trained on the series without its newest
`--new` rows (the last years of a panel), then the new rows "arrive". Each
repeat copies that champion to a registered model of its own, so every cold
and every warm retrain faces the same champion; cold and warm alternate
(seed = repeat) so drift in the machine's speed hits both.

    python bench/warm_start.py [--experiments gas_furnace,default,fertility]
        [--repeats 3] [--new 40] [KEY=VALUE ...: overrides of the warm runs]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _old_rows(config, new: int):
    """The experiment's data without its newest rows: the last `new` rows of
    a series, or the last `new // 10` times of a panel (all series)."""
    from components.data import ingest

    raw = ingest.read_raw(config.data)
    time_column = config.data.time_column
    if config.data.id_column and time_column:
        times = sorted(raw[time_column].unique())
        return raw[raw[time_column] <= times[-(max(1, new // 10)) - 1]], raw
    return raw.iloc[:-new], raw


def run(
    experiment: str, repeats: int, new: int, folder: Path, warm: list[str]
) -> list[dict]:
    from mlflow import MlflowClient

    from components.config.loading import load_experiment
    from components.tracking import registry
    from flows.retrain import retrain_flow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    base = load_experiment(experiment, [f"tracking.uri={uri}"])
    old, full = _old_rows(base, new)
    data = folder / f"{base.name}.csv"
    old.to_csv(data, index=False)
    common = [f"tracking.uri={uri}", f"data.path={data}", "data.sha256=null"]
    first = retrain_flow(load_experiment(
        experiment, [*common, f"tracking.registered_model={base.name}-base"]
    ))  # fmt: skip
    assert first.decision == "promoted", first.reason
    full.to_csv(data, index=False)  # the new rows arrive
    client = MlflowClient(uri, registry_uri=uri)
    champion = client.get_model_version(f"{base.name}-base", first.version)
    rows = []
    for repeat in range(repeats):
        modes = ("cold", "warm") if repeat % 2 == 0 else ("warm", "cold")
        for mode in modes:
            name = f"{base.name}-{mode}-{repeat}"
            copy = registry.register(
                uri, name, champion.source, champion.run_id, dict(champion.tags)
            )
            registry.promote(uri, copy)
            flags = ["retrain.warm_start=true", *warm] if mode == "warm" else []
            config = load_experiment(experiment, [
                *common, f"tracking.registered_model={name}",
                f"train.seed={repeat}", *flags,
            ])  # fmt: skip
            started = time.perf_counter()
            result = retrain_flow(config)
            seconds = time.perf_counter() - started
            metrics = client.get_run(result.run_id).data.metrics
            unit = "scaled" if config.data.is_panel else "raw"
            rows.append({
                "experiment": experiment, "mode": mode, "repeat": repeat,
                "seconds": seconds, "epochs": metrics.get("epochs_trained"),
                "holdout_mse": metrics.get(f"holdout_mse_{unit}"),
                "champion_mse": metrics.get(f"champion_holdout_mse_{unit}"),
                "decision": result.decision,
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", default="gas_furnace,default,fertility")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new", type=int, default=40)
    parser.add_argument("warm", nargs="*", metavar="KEY=VALUE",
                        help="overrides of the warm runs, e.g. retrain.warm_epochs=10")
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    from flows import terminal

    terminal.quiet_tensorflow()
    terminal.prepare(False, False)
    rows = []
    with prefect_test_harness(server_startup_timeout=120), tempfile.TemporaryDirectory() as tmp:
        for experiment in args.experiments.split(","):
            rows += run(experiment, args.repeats, args.new, Path(tmp), args.warm)
    print("\n| experiment | cold s | warm s | warm/cold time | cold epochs | warm epochs "
          "| cold holdout MSE | warm holdout MSE | champion MSE | promoted cold/warm |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for experiment in args.experiments.split(","):
        mine = [r for r in rows if r["experiment"] == experiment]

        def med(mode, key, mine=mine):
            return statistics.median(r[key] for r in mine if r["mode"] == mode)

        promoted = {m: sum(r["decision"] == "promoted" for r in mine if r["mode"] == m)
                    for m in ("cold", "warm")}  # fmt: skip
        n = len(mine) // 2
        print(f"| {experiment} | {med('cold', 'seconds'):.1f} | {med('warm', 'seconds'):.1f} "
              f"| {med('warm', 'seconds') / med('cold', 'seconds'):.2f} "
              f"| {med('cold', 'epochs'):.0f} | {med('warm', 'epochs'):.0f} "
              f"| {med('cold', 'holdout_mse'):.4g} | {med('warm', 'holdout_mse'):.4g} "
              f"| {mine[0]['champion_mse']:.4g} | {promoted['cold']}/{n} vs "
              f"{promoted['warm']}/{n} |")  # fmt: skip
    print("(medians over repeats; MSE in original units, a panel's scaled per series)")


if __name__ == "__main__":
    main()
