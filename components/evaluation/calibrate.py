"""Which intervals a run serves, calibrated on validation windows and scored on
the test split: a quantile model's pairs moved to cover their level, or a point
model's conformal radii. The `calibrate_intervals` task of flows/train.py logs
what this returns."""

from components.evaluation import intervals
from components.evaluation.evaluate import Evaluation


def calibrate_intervals(
    val_report: Evaluation | None,
    report: Evaluation,
    conformal: bool,
    point_levels: list[float],
    served_quantiles: list[float] | None,
) -> tuple[dict[str, float], intervals.Calibration, list[float]]:
    """(the test metrics of the served intervals, the `Calibration` serving
    applies, the central levels scored). `conformal`: calibrate on
    `val_report` (a point model always does); `point_levels`: a point
    model's interval levels (`evaluate.intervals`); `served_quantiles`: the
    levels a quantile model serves (`model.quantiles`). A panel calibrates in
    units of each series' scale (`window_scale`)."""
    if report.quantiles is not None:
        levels = list(report.levels)
        shifts = None
        if conformal:
            shifts = intervals.conformal_shifts(
                val_report.actual, val_report.quantiles, levels,
                val_report.window_scale,
            )  # fmt: skip
        calibration = intervals.Calibration(
            levels=tuple(levels), served=tuple(served_quantiles), shifts=shifts
        )
        served = calibration.moved(report.quantiles, report.window_scale)
        metrics = intervals.quantile_metrics(report.actual, served, levels)
        central = [level for level, _, _ in intervals.central_pairs(levels)]
        return metrics, calibration, central
    metrics, radii = intervals.conformal_intervals(
        val_report.actual, val_report.forecasts["model"], report.actual,
        report.forecasts["model"], point_levels, val_report.window_scale,
        report.window_scale,
    )  # fmt: skip
    return metrics, intervals.Calibration(radii=radii), list(point_levels)
