"""Notebooks are committed executed, and run top to bottom against the real
flows (short training)."""

import nbformat
from conftest import REPO
from nbclient import NotebookClient


def _execute(name, prefect_api, cache_dir, mlflow_uri, monkeypatch):
    # The kernel inherits these: the session's Prefect API, a temp MLflow store,
    # short training.
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("RNNFLOW_NOTEBOOK_EPOCHS", "2")
    monkeypatch.setenv("RNNFLOW_NOTEBOOK_SEEDS", "1")
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(cache_dir))
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    # committed executed (`python notebooks/execute.py`), so they render for a
    # reader: every code cell ran, in order, without an error
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), name
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "oneDNN" not in streams and "absl::" not in streams  # no C++ notices
    assert any(o.get("data", {}).get("image/png") for c in code for o in c.outputs)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    ).execute()
    return notebook


def _text(cell) -> str:
    return "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def test_quickstart_executes(prefect_api, cache_dir, mlflow_uri, monkeypatch):
    notebook = _execute(
        "quickstart.ipynb", prefect_api, cache_dir, mlflow_uri, monkeypatch
    )
    table = _text(notebook.cells[5])
    assert "persistence" in table and "linear AR" in table
    assert "(1, 1, 2)" in _text(notebook.cells[-1])


def test_compare_architectures_executes(
    prefect_api, cache_dir, mlflow_uri, monkeypatch
):
    notebook = _execute(
        "compare_architectures.ipynb", prefect_api, cache_dir, mlflow_uri, monkeypatch
    )
    runs = _text(notebook.cells[4])
    for kind in ("mlp", "simple_rnn", "lstm", "gru", "bidirectional", "seq2seq"):
        assert kind in runs
    board = _text(notebook.cells[6])
    assert "persistence" in board and "linear" in board
    assert any(
        o.get("output_type") == "display_data" for o in notebook.cells[-1].outputs
    )


def test_production_loop_executes(prefect_api, cache_dir, mlflow_uri, monkeypatch):
    notebook = _execute(
        "production_loop.ipynb", prefect_api, cache_dir, mlflow_uri, monkeypatch
    )
    printed = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code"
        for o in c.outputs if o.output_type == "stream"
    )  # fmt: skip
    assert "monitor over 20 origin(s)" in printed and "retrain: MASE" in printed
    assert "oneDNN" not in printed and "absl::" not in printed  # no C++ notices
    assert "champion: v2" in _text(notebook.cells[-1])  # the retrain moved it
