"""Notebooks run top to bottom against the real flows (short training)."""

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO


@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_notebook_executes(name, prefect_api, cache_dir, mlflow_uri, monkeypatch):
    # The kernel inherits these: the session's Prefect API, a temp MLflow store.
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("RNNFLOW_NOTEBOOK_EPOCHS", "3")
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(cache_dir))
    path = REPO / "notebooks" / name
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    NotebookClient(
        notebook, timeout=300, kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    ).execute()
    table = notebook.cells[5].outputs[0]["data"]["text/plain"]
    assert "persistence" in table and "linear AR" in table
    assert "(1, 1, 2)" in notebook.cells[-1].outputs[0]["data"]["text/plain"]
