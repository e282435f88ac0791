"""Run the notebooks top to bottom and save them with their outputs, so they
render for a reader (GitHub, JupyterLab) without running anything.

    python notebooks/execute.py [--seeds 1] [NAME.ipynb ...]

Runs log to a new temporary MLflow store (the notebooks show run ids, never a
path of this machine). `RNNFLOW_CACHE_DIR` is passed through: on a machine
without internet, point it at a cache holding the gas furnace file.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, env: dict[str, str]) -> None:
    notebook = nbformat.read(path, as_version=4)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # the kernel inherits them
    try:
        NotebookClient(
            notebook, timeout=1800, kernel_name="python3",
            resources={"metadata": {"path": str(HERE.parent)}},
        ).execute()  # fmt: skip
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    for cell in notebook.cells:  # outputs only: no machine-specific metadata
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(notebook, path)
    print(f"wrote {path.relative_to(HERE.parent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="default: every notebook here")
    parser.add_argument("--seeds", default="1", help="seeds per model in compare")
    args = parser.parse_args()
    paths = [HERE / n for n in args.names] or sorted(HERE.glob("*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="rnnflow-notebooks-") as store:
        env = {
            "MLFLOW_TRACKING_URI": f"sqlite:///{Path(store) / 'mlflow.db'}",
            "RNNFLOW_NOTEBOOK_SEEDS": args.seeds,
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        for path in paths:
            execute(path, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
