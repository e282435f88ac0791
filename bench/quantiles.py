"""Uncertainty on real series: rnnflow's quantile GRU (pinball loss, its own
quantiles and conformally calibrated ones), conformal intervals around the
point GRU, and ARIMA's Gaussian intervals, on the same test windows.

For each series of `bench/quality.py` asked for: two default training runs
(a point GRU with `evaluate.intervals`, a quantile GRU with
`model.quantiles`), and ARIMA (`components.evaluation.classical`, fitted on the
training rows) with its Gaussian quantiles forecast + z_q * sigma. Printed
per method: coverage of the 80 % and 90 % intervals (nominal: the level),
their interval (Winkler) scores, the weighted quantile loss (wQL, the scaled
CRPS approximation; over the levels 0.05, 0.1, 0.5, 0.9, 0.95) and the MAE
of the point forecast, original units; lower is better except coverage.

    pip install -e ".[bench]"
    python bench/quantiles.py --series sunspots,co2,elnino,airpassengers
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import ROOT, experiment  # noqa: E402

sys.path.insert(0, str(ROOT))
QUANTILES = [0.05, 0.1, 0.5, 0.9, 0.95]
INTERVALS = [0.8, 0.9]  # the central pairs of QUANTILES


def scores(actual, quantiles) -> dict[str, float]:
    """Coverage, interval scores, wQL and the median's MAE of quantile
    forecasts (W, T, K, Q) at `QUANTILES`."""
    from components.evaluation.intervals import quantile_metrics

    found = quantile_metrics(actual, quantiles, QUANTILES)
    found["mae"] = float(np.abs(quantiles[..., QUANTILES.index(0.5)] - actual).mean())
    return found


def arima_quantiles(config, report) -> np.ndarray:
    """ARIMA's Gaussian quantiles (W, T, K, Q) on the run's test windows."""
    from components.evaluation import classical
    from flows.steps import prepare_data

    data = prepare_data(config)
    found = classical.forecast_windows(
        "arima",
        data.scaled["train"].levels,
        data.scaled["test"].levels,
        config.window,
        config.evaluate.season,
        between=data.scaled["val"].levels,
    )
    z = norm.ppf(QUANTILES)  # (Q,)
    return found.forecast[..., None] + found.std[..., None] * z


def served(result) -> np.ndarray:
    """The quantiles (W, T, K, Q) a run's forecaster serves on its test
    windows (the median: its point forecast)."""
    report, calibration = result.evaluation, result.forecaster.calibration
    point = report.forecasts["model"]
    found = calibration.quantiles(point, report.quantiles, report.window_scale)
    found[0.5] = point
    return np.stack([found[q] for q in QUANTILES], axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="sunspots,co2,elnino,airpassengers")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    from components.config.loading import load_experiment
    from flows.train import train_flow

    folder = Path(tempfile.mkdtemp(prefix="rnnflow-quantiles-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    levels = "[" + ", ".join(str(v) for v in INTERVALS) + "]"
    quantiles = "[" + ", ".join(str(q) for q in QUANTILES if q != 0.5) + "]"
    print("| series | method | coverage 80 / 90 | interval score 80 / 90 | wQL | MAE |")
    print("|---|---|---|---|---:|---:|")
    for name in args.series.split(","):
        path = experiment(name, folder, uri, args.epochs)
        point_config = load_experiment(path, [f"evaluate.intervals={levels}"])
        point = train_flow(point_config)
        quantile = train_flow(
            load_experiment(path, [f"model.quantiles={quantiles}"])
        )
        report = quantile.evaluation
        rows = {
            "gru + conformal": scores(report.actual, served(point)),
            "quantile gru, own": scores(report.actual, report.quantiles),
            "quantile gru, calibrated": scores(report.actual, served(quantile)),
            "ARIMA, Gaussian": scores(
                report.actual, arima_quantiles(point_config, point.evaluation)
            ),
        }
        for label, m in rows.items():
            print(
                f"| {name} | {label} | {m['test_coverage_80']:.3f} / "
                f"{m['test_coverage_90']:.3f} | {m['test_interval_score_80_raw']:.4g}"
                f" / {m['test_interval_score_90_raw']:.4g} | {m['test_wql']:.4f} "
                f"| {m['mae']:.4g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
