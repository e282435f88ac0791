"""Secrets in URLs never reach MLflow; models load in safe mode only."""

import json
import re
import subprocess

from conftest import REPO, make_series, write_experiment
from mlflow import MlflowClient

from components.config.loading import load_experiment


def test_url_credentials_never_reach_mlflow(
    prefect_api, http_server, tmp_path, mlflow_uri, monkeypatch
):
    from flows.train import train_flow

    base, root = http_server
    make_series(150).to_csv(root / "series.csv", index=False)
    monkeypatch.setenv("RNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    secret_url = (
        base.replace("http://", "http://alice:s3cret@") + "/series.csv?token=t0k3n"
    )
    experiment = write_experiment(
        tmp_path / "secret.yaml",
        f"""
data: {{path: "{secret_url}"}}
split: {{val: 30, test: 30}}
window: {{input_width: 8}}
model: {{kind: mlp, units: [4]}}
train: {{epochs: 1}}
tracking: {{uri: "{mlflow_uri}"}}
""",
    )
    result = train_flow(load_experiment(str(experiment)))
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)
    config_text = open(client.download_artifacts(run.info.run_id, "config.yaml")).read()
    stored = [
        *run.data.params.values(),
        *run.data.tags.values(),
        config_text,
        *(d.dataset.source for d in run.inputs.dataset_inputs),
    ]
    for text in stored:
        assert "s3cret" not in text and "t0k3n" not in text and "alice" not in text
    assert run.data.params["data.path"].endswith("/series.csv?<redacted>")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:  # what Prefect stored
        flow_run = prefect.read_flow_run(run.data.tags["prefect_flow_run_id"])
    parameters = json.dumps(flow_run.parameters)
    assert "series.csv?<redacted>" in parameters
    assert "s3cret" not in parameters and "t0k3n" not in parameters


def test_no_code_path_turns_safe_mode_off():
    sources = subprocess.run(
        ["git", "ls-files", "components", "flows", "notebooks"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout.split()
    offenders = [
        path
        for path in sources
        if re.search(
            r"safe_mode\s*=\s*False|enable_unsafe_deserialization",
            (REPO / path).read_text(),
        )
    ]
    assert offenders == []


def test_basic_auth_credentials_are_sent_as_a_header_not_a_host():
    from components.data.download import _request

    request = _request("https://al%40ice:p%3Ass@example.org:8443/d.csv?x=1")
    assert request.full_url == "https://example.org:8443/d.csv?x=1"
    assert (
        request.get_header("Authorization") == "Basic YWxAaWNlOnA6c3M="
    )  # al@ice:p:ss
    assert _request("https://example.org/d.csv").get_header("Authorization") is None
