"""The README's first run and tour, as written, on a machine with no network.

Each `rnnflow` command of README.md's set-up and tour sections runs in a fresh
process inside a new network namespace (`unshare -n`: only a loopback
interface), with short trainings and a temporary MLflow store added as
overrides. `rnnflow deploy` is left out: it leaves a Prefect server and worker
running (tests/test_deploy.py runs it end to end and stops them).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

SHORT = ["train.epochs=2"]


def _tour_commands() -> list[list[str]]:
    """Every `rnnflow ...` line in README.md's bash blocks, comments cut."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("rnnflow "):
                    commands.append(shlex.split(part))
    return commands


def _sample_output() -> list[str]:
    """The first word of each line of the README's sample `rnnflow train` output."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"It prints.*?```\n(.*?)```", text, flags=re.S).group(1)
    return [line.split()[0] for line in block.splitlines() if line.strip()]


# Run inside the new namespace: bring its loopback up (ioctl, so no `ip` tool
# is needed), then become the command.
_LOOPBACK_UP = """
import fcntl, os, socket, struct, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
os.execvp(sys.argv[1], sys.argv[1:])
"""


def _offline() -> list[str]:
    """A prefix that runs a command with no network but loopback."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux) to cut the network")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr!r}")
    return ["unshare", "-n", sys.executable, "-c", _LOOPBACK_UP]


def test_the_readme_tour_runs_offline(tmp_path):
    commands = _tour_commands()
    verbs = [c[1] for c in commands]
    assert verbs[:1] == ["train"] and {"compare", "retrain", "predict"} <= set(verbs)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    env = {**os.environ, "RNNFLOW_LOCAL": "1", "RNNFLOW_CACHE_DIR": str(tmp_path / "c")}
    env.pop("PREFECT_API_URL", None)  # each command starts its own, on loopback
    source = pd.read_csv(REPO / "components" / "data" / "shipped" / "gas_furnace.csv",
                         sep=None, engine="python")  # fmt: skip
    source.tail(20).to_csv(tmp_path / "latest.csv", index=False)
    prefix = _offline()
    # no network: the same prefix cannot reach an outside address
    cut = subprocess.run(
        [*prefix, sys.executable, "-c",
         "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cut.returncode != 0 and "unreachable" in cut.stderr.lower()
    for command in commands:
        if command[1] == "deploy":
            continue
        overrides = [*SHORT, f"tracking.uri={uri}"]
        if command[1] == "predict":
            overrides = [f"tracking.uri={uri}"]
        as_json = command[1] != "train"  # train: what the README shows it prints
        args = [*command[1:], *overrides, *(["--json"] if as_json else [])]
        if "--json" in command:
            args = [*command[1:], *overrides]
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "flows.cli", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
        )  # fmt: skip
        shown = " ".join(command)
        assert done.returncode == 0, f"{shown}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        lines = (done.stderr + done.stdout).splitlines()
        printed = [
            line for line in (lines[:-1] if as_json else lines)
            if line.strip() and not line.startswith("epoch ")
        ]  # what a person reads, the --json line and the epoch lines aside
        twice = {line for line in printed if printed.count(line) > 1}
        assert not twice, f"{shown} printed these lines more than once: {twice}"
        if not as_json:  # the README shows what prints
            assert [line.split()[0] for line in printed] == _sample_output()
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if command[1] == "predict":
            assert len(result["forecast"]) >= 1, shown
        elif command[1] == "retrain":
            assert result["decision"] in ("promoted", "rejected", "skipped"), shown
        else:
            assert result.get("run_id") or result.get("parent_run_id"), shown
