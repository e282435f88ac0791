"""Take the README's pictures of the MLflow UI with a headless browser.

    python docs/screenshots.py [--out docs/images] [--epochs 30]

Runs `rnnflow train`, `rnnflow compare` (mlp and gru, two seeds) and
`rnnflow retrain` on the default experiment into a new temporary MLflow store,
starts `mlflow server` on it (127.0.0.1), and photographs what a user sees
with Chromium driven over the DevTools protocol (no Selenium, no driver):

    runs.png         the experiment's runs as the printed link opens them: rnnflow's
                     saved view, the deciding metrics as columns, sorted
    charts.png       its chart view, searched for `test_mse`, the per-model and
                     baseline sections folded so "Model metrics" shows
    compare_run.png  the compare parent: its description is the leaderboard
    leaderboard.png  the compare run's leaderboard plot (an artifact, copied)

Needs `chromium` on the PATH (Debian: `apt-get install chromium`). Everything
started here is stopped at the end.
"""

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from components.tracking.runs import ui_link  # noqa: E402

WIDTH, HEIGHT = 1400, 860


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_url(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def rnnflow(uri: str, *args: str) -> dict:
    """Run one `rnnflow` command on the store `uri`; its --json result."""
    command = [sys.executable, "-m", "flows.cli", "--local", *args,
               f"tracking.uri={uri}", "--json"]  # fmt: skip
    print("$ rnnflow", " ".join(args), flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"rnnflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Browser:
    """One headless Chromium tab, driven over the DevTools protocol."""

    def __init__(self, profile: Path):
        port = free_port()
        self.process = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--hide-scrollbars", f"--remote-debugging-port={port}",
             f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        listing = f"http://127.0.0.1:{port}/json/list"
        wait_for_url(listing, 30)
        tabs = json.load(urllib.request.urlopen(listing))
        page = next(t for t in tabs if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.calls = 0
        self.call("Page.enable")

    def call(self, method: str, **params) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def run(self, script: str):
        found = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        return found.get("result", {}).get("value")

    def open(self, url: str, ready: str) -> None:
        """Go to `url`, wait until the JavaScript condition `ready` holds, and
        close MLflow's assistant panel (it opens beside every page at first)."""
        self.call("Page.navigate", url=url)
        self.wait(ready)
        self.click('[data-component-id="mlflow.assistant.chat_panel.close"]')

    def click(self, selector: str, ready: str = "true") -> None:
        """Click the first element matching `selector` (when there is one),
        then wait for `ready`."""
        self.run(f"document.querySelector({json.dumps(selector)})?.click()")
        self.wait(ready)

    def type_into(self, selector: str, text: str) -> None:
        """Set a React-controlled input's value as typing would."""
        self.run(
            f"(() => {{ const box = document.querySelector({json.dumps(selector)});"
            " const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype,"
            f" 'value').set; set.call(box, {json.dumps(text)});"
            " box.dispatchEvent(new Event('input', {bubbles: true})); })()"
        )
        self.wait("true")

    def wait(self, ready: str, seconds: float = 45) -> None:
        deadline = time.monotonic() + seconds
        while not self.run(f"Boolean({ready})"):
            if time.monotonic() > deadline:
                failed = Path(tempfile.gettempdir()) / "screenshot-failed.png"
                self.shoot(failed)
                raise RuntimeError(f"the page never got to {ready!r}; see {failed}")
            time.sleep(0.3)
        time.sleep(2)  # tables and charts finish drawing

    def shoot(self, path: Path, height: int = HEIGHT) -> None:
        import base64

        if height != HEIGHT:  # a taller page for this picture
            self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height,
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
            self.wait("true")
        shot = self.call("Page.captureScreenshot", format="png")
        if height != HEIGHT:
            self.call("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--work", type=Path,
        help="keep the store here (reused when it holds one: only the pictures "
        "are taken again)",
    )  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnflow-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work.resolve() / 'mlflow.db'}"
    if not (work / "mlflow.db").exists():
        epochs = f"train.epochs={args.epochs}"
        rnnflow(uri, "train", "default", epochs)
        rnnflow(uri, "compare", "default", "--models", "mlp,gru", "--seeds", "2", epochs)
        rnnflow(uri, "retrain", "default", epochs)

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("default").experiment_id
    (parent,) = client.search_runs(
        [experiment], "tags.`rnnflow.role` = 'compare'", max_results=1
    )
    parent = parent.info.run_id
    local = client.download_artifacts(parent, "plots", str(work))
    shutil.copy(Path(local) / "leaderboard.png", args.out / "leaderboard.png")
    print(f"wrote {args.out / 'leaderboard.png'}")

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    browser = None
    profile = Path(tempfile.mkdtemp(prefix="rnnflow-chromium-"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_url(base)
        browser = Browser(profile)  # a new one: the UI keeps its view modes there
        mode = "workflowType=machine_learning"
        rows = "document.querySelectorAll('.ag-row').length >= 3"
        browser.open(ui_link(base, experiment), rows)  # the link rnnflow prints
        browser.click(  # the compare parent's children
            'button[data-component-id$="runnamecellrenderer.tsx_46"]',
            "document.querySelectorAll('.ag-row').length >= 7",
        )
        browser.shoot(args.out / "runs.png")
        browser.open(  # the link `rnnflow compare` prints: the deciding metrics first
            ui_link(base, experiment, charts=True),
            "document.body.innerText.includes('Deciding metrics')",
        )
        browser.wait("true")
        browser.shoot(args.out / "charts.png", height=1250)
        browser.open(
            f"{base}/#/experiments/{experiment}/runs/{parent}?{mode}",
            "document.body.innerText.includes('Leaderboard')",
        )
        browser.shoot(args.out / "compare_run.png")
    finally:
        if browser:
            browser.close()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
