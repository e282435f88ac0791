"""Orchestration and start-up tax: `rnnflow train` end to end vs its training phase.

Five measurements, in one run:
  1. `rnnflow --help` and `rnnflow train --help` wall time (median of 5);
  2. `rnnflow --local train EXPERIMENT --json` with Prefect's temporary server
     (every call before the server started on first use);
  3. the same against a `prefect server start` already running on 127.0.0.1;
  4. the same with an `rnnflow server` running (warm process, same Prefect
     server): the client sends the command there;
  5. what a new user gets now: `rnnflow train` with no server running, so the
     first call starts the background server (and its Prefect server) and
     the later ones use it. First call, then the median of the others.
For 2-4 it prints wall time, `train_seconds` from the run, and the
difference (the tax: imports, Prefect, MLflow logging, model saving).

    python bench/overhead.py [--experiment default] [--repeats 2] [KEY=VALUE ...]

Runs log to a temporary MLflow store; the Prefect server is stopped at the end.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def timed(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, done.stdout


def train_tax(args, env: dict, local: bool = True) -> list[tuple[float, float]]:
    command = [
        sys.executable,
        "-m",
        "flows.cli",
        *(["--local"] if local else []),
        "train",
        args.experiment,
        *args.overrides,
        "--json",
    ]
    results = []
    for _ in range(args.repeats):
        wall, out = timed(command, env)
        train_seconds = json.loads(out.strip().splitlines()[-1])["metrics"][
            "train_seconds"
        ]
        results.append((wall, train_seconds))
    return results


def start_prefect_server(env: dict) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("prefect server did not answer within 120 s")


def report(label: str, results: list[tuple[float, float]]) -> None:
    wall = statistics.median(r[0] for r in results)
    train = statistics.median(r[1] for r in results)
    print(
        f"{label:<34}{wall:>8.1f} s wall {train:>8.1f} s training "
        f"{wall - train:>8.1f} s tax"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="default")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("overrides", nargs="*", default=["train.epochs=20"])
    args = parser.parse_args()
    store = tempfile.mkdtemp()
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
    }
    env.pop("PREFECT_API_URL", None)

    for argv in (["--help"], ["train", "--help"]):
        times = [
            timed([sys.executable, "-m", "flows.cli", *argv], env)[0] for _ in range(5)
        ]
        print(f"rnnflow {' '.join(argv):<26}{statistics.median(times):>8.2f} s")

    env["RNNFLOW_AUTOSTART"] = "0"
    report("train, temporary Prefect server", train_tax(args, env))
    server, url = start_prefect_server(env)
    warm = None
    try:
        report(
            "train, running Prefect server",
            train_tax(args, {**env, "PREFECT_API_URL": url}),
        )
        state = tempfile.mkdtemp()
        served_env = {**env, "RNNFLOW_STATE_DIR": state, "PREFECT_API_URL": url}
        warm = start_rnnflow_server(served_env, state)
        client_env = {k: v for k, v in served_env.items() if k != "PREFECT_API_URL"}
        train_tax(args, client_env)  # the server's first run compiles and caches
        report(
            "train, running rnnflow server", train_tax(args, client_env, local=False)
        )
    finally:
        if warm:
            warm.terminate()
            warm.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)
    first_use(args, env)


def first_use(args, env: dict) -> None:
    """A new shell, nothing running: the first call starts the server."""
    state = tempfile.mkdtemp()
    fresh = {**env, "RNNFLOW_STATE_DIR": state, "RNNFLOW_AUTOSTART": "1"}
    try:
        first = train_tax(argparse.Namespace(**{**vars(args), "repeats": 1}), fresh,
                          local=False)  # fmt: skip
        report("train, first call (starts server)", first)
        report("train, later calls", train_tax(args, fresh, local=False))
    finally:
        subprocess.run([sys.executable, "-m", "flows.cli", "server", "stop"],
                       env=fresh, capture_output=True)  # fmt: skip


def start_rnnflow_server(env: dict, state: str) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while not any(name.startswith("server-") and name.endswith(".json")
                  for name in os.listdir(state)):  # fmt: skip
        if time.monotonic() > deadline or server.poll() is not None:
            server.terminate()
            raise RuntimeError("rnnflow server did not start within 180 s")
        time.sleep(0.5)
    return server


if __name__ == "__main__":
    main()
