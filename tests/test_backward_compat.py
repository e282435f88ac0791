"""Models logged by an earlier rnnflow still load and forecast the same.

tests/fixtures/forecasters_v1/ holds a single-series and a panel forecaster
logged before components/ became packages (format 1 of forecaster.json), the
rows each was asked to forecast and what it answered then (NeuralForecast
keeps tests/backward_comp for the same reason).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.serving.kinds import load_saved

FIXTURES = Path(__file__).parent / "fixtures" / "forecasters_v1"
KINDS = ["series", "panel"]


def _expected(kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(FIXTURES / kind / "input.csv"), pd.read_csv(
        FIXTURES / kind / "forecast.csv"
    )


def _assert_same_forecast(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    numeric = [c for c in expected.columns if c not in ("series", "time")]
    # today a panel's rows also say who made them; the old rows were all the network's
    assert [c for c in got.columns if c != "forecaster"] == list(expected.columns)
    assert set(got.get("forecaster", ["network"])) == {"network"}
    np.testing.assert_allclose(
        got[numeric].to_numpy(np.float64), expected[numeric].to_numpy(np.float64),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    if "series" in expected:
        assert got["series"].astype(str).tolist() == expected["series"].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_a_format_1_folder_loads_as_its_kind_and_forecasts_the_same(kind):
    folder = FIXTURES / kind / "model" / "artifacts" / "forecaster"
    assert json.loads((folder / "forecaster.json").read_text())["format"] == 1
    forecaster = load_saved(folder)
    assert forecaster.TYPE == kind
    rows, expected = _expected(kind)
    _assert_same_forecast(forecaster.forecast(rows), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_an_old_logged_model_loads_through_rnnflow_after_the_move(kind, mlflow_uri):
    """What `rnnflow predict --model-uri` and the retrain gate do: the saved
    folder opened by today's code, in a process that imports the new
    `components` (MLflow would put the model's own old copy of `components/`
    after it, and its entry point would not find `components.packaging`)."""
    from components.tracking import packaging

    forecaster = packaging.load_forecaster(str(FIXTURES / kind / "model"), mlflow_uri)
    rows, expected = _expected(kind)
    _assert_same_forecast(forecaster.forecast(rows), expected)


def test_an_old_logged_model_serves_with_its_own_code_in_a_fresh_process(tmp_path):
    """`mlflow models serve` and `mlflow.pyfunc.load_model` in a process that
    has not imported rnnflow use the code the model carries."""
    kind = "series"
    script = (
        "import sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({str(FIXTURES / kind / 'model')!r})\n"
        f"rows = pd.read_csv({str(FIXTURES / kind / 'input.csv')!r})\n"
        "model.predict(rows).to_csv(sys.argv[1], index=False)\n"
        "import components; print(components.__path__[0])\n"
    )
    out = tmp_path / "forecast.csv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("model/code/components")  # its own copy
    _assert_same_forecast(pd.read_csv(out), _expected(kind)[1])


def test_a_saved_forecaster_names_its_type_and_format_and_refuses_unknown_ones(
    tmp_path,
):
    folder = FIXTURES / "panel" / "model" / "artifacts" / "forecaster"
    forecaster = load_saved(folder)
    saved = forecaster.save(tmp_path / "saved")
    meta = json.loads((saved / "forecaster.json").read_text())
    assert (meta["type"], meta["format"]) == ("panel", 2)
    again = load_saved(saved)
    np.testing.assert_array_equal(again.normalizer.mean, forecaster.normalizer.mean)
    assert again.normalizer.series == forecaster.normalizer.series
    rows, expected = _expected("panel")
    _assert_same_forecast(again.forecast(rows), expected)

    for key, value in (("format", 99), ("type", "ensemble")):
        (saved / "forecaster.json").write_text(json.dumps({**meta, key: value}))
        from components.common.errors import DataError

        with pytest.raises(DataError, match=f"invalid value for `{key}`"):
            load_saved(saved)
