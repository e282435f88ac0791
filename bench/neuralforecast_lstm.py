"""NeuralForecast's LSTM on a panel written by `bench/panel.py --part nf`:
the reference it compares rnnflow with. Runs in its own environment (torch
and neuralforecast, which rnnflow does not depend on):

    python -m venv /tmp/nf && /tmp/nf/bin/pip install "torch==2.13.0" neuralforecast pyarrow
    /tmp/nf/bin/python bench/neuralforecast_lstm.py FOLDER

Reads FOLDER/panel (hive-partitioned Parquet, columns id, t, y: the training
rows) and FOLDER/settings.json (window, horizon, steps, and under `nf` the
LSTM arguments that depart from NeuralForecast's defaults); trains for
exactly that many steps; writes FOLDER/neuralforecast.parquet (id, step,
y_hat: the next `horizon` values of every series) and prints seconds (its
`fit()`, and from reading the files on) and its peak RSS as JSON.
"""

import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd


def _peak_rss() -> int:
    """This process's own peak resident memory, bytes: VmHWM, which starts
    anew at exec (`ru_maxrss` keeps the forking parent's size)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main(folder: Path) -> None:
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    torch.set_num_threads(os.cpu_count() or 1)
    settings = json.loads((folder / "settings.json").read_text())
    start = time.perf_counter()
    frame = pd.read_parquet(folder / "panel")
    frame = frame.rename(columns={"id": "unique_id", "t": "ds"})
    frame["unique_id"] = frame["unique_id"].astype(str)
    frame = frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    model = LSTM(
        h=settings["horizon"],
        input_size=settings["input_width"],
        max_steps=settings["nf_steps"],
        random_seed=0,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        **settings["nf"],  # what departs from its defaults (bench/panel.py NF_MODES)
    )
    assert model.windows_batch_size == settings["nf_windows_per_step"]
    forecaster = NeuralForecast(models=[model], freq=1)
    fitting = time.perf_counter()
    forecaster.fit(frame)
    fit = time.perf_counter() - fitting
    total = time.perf_counter() - start
    predicted = forecaster.predict().reset_index()
    predicted["step"] = predicted.groupby("unique_id").cumcount() + 1
    predicted = predicted.rename(columns={"unique_id": "id", "LSTM": "y_hat"})
    predicted[["id", "step", "y_hat"]].to_parquet(folder / "neuralforecast.parquet")
    print(json.dumps({
        "fit_s": fit, "total_s": total, "rss": _peak_rss(),
        "forecast": "neuralforecast.parquet",
        "versions": {"neuralforecast": __import__("neuralforecast").__version__,
                     "torch": torch.__version__},
    }))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
