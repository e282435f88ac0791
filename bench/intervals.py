"""Prediction intervals on real series: rnnflow's conformal intervals around the
default network against ARIMA's own Gaussian intervals, same test windows.

For each series of `bench/quality.py` asked for: a default training run (its
intervals are calibrated on the validation split's errors, `evaluate.intervals`),
and ARIMA (`components.classical`, fitted on the training rows) with
forecast +- z * its forecast standard deviation. Printed per level: empirical
coverage (nominal: the level), mean width and the interval (Winkler) score,
original units; lower score is better.

    pip install -e ".[bench]"
    python bench/intervals.py --series sunspots,co2,elnino,airpassengers
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import ROOT, SERIES, experiment  # noqa: E402

sys.path.insert(0, str(ROOT))
LEVELS = (0.8, 0.95)


def arima_intervals(config, report) -> dict[float, dict[str, float]]:
    """ARIMA's Gaussian intervals on the run's test windows, per level."""
    from components import classical, intervals
    from flows.train import prepare_data

    data = prepare_data(config)
    found = classical.forecast_windows(
        "arima",
        data.scaled["train"].levels,
        data.scaled["test"].levels,
        config.window,
        config.evaluate.season,
        between=data.scaled["val"].levels,
    )
    scores = {}
    for level in LEVELS:
        radius = norm.ppf(0.5 + level / 2) * found.std  # (W, T, K)
        scores[level] = intervals.interval_metrics(
            report.actual, found.forecast, radius, level
        )
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="sunspots,co2,elnino,airpassengers")
    args = parser.parse_args()
    from components.config import load_experiment
    from components.intervals import level_name
    from flows.train import train_flow

    folder = Path(tempfile.mkdtemp(prefix="rnnflow-intervals-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    levels = "[" + ", ".join(str(v) for v in LEVELS) + "]"
    print("| series | level | model | coverage | width | interval score |")
    print("|---|---:|---|---:|---:|---:|")
    for name in args.series.split(","):
        path = experiment(name, folder, uri, None)
        config = load_experiment(path, [f"evaluate.intervals={levels}"])
        result = train_flow(config)
        reference = arima_intervals(config, result["evaluation"])
        for level in LEVELS:
            tag = level_name(level)
            ours = result["metrics"]
            theirs = reference[level]
            for label, m in (("gru, conformal", ours), ("ARIMA, Gaussian", theirs)):
                print(
                    f"| {name} | {tag} % | {label} | {m[f'test_coverage_{tag}']:.3f} "
                    f"| {m[f'test_width_{tag}_raw']:.4g} "
                    f"| {m[f'test_interval_score_{tag}_raw']:.4g} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
