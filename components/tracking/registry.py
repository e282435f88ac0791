"""Registered models, versions and the `champion` alias in MLflow's registry.

The registry lives in the tracking store (sqlite or a tracking server); every
function takes that URI explicitly, like `tracking`.
"""

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.tracking.store import fluent_store

CHAMPION = "champion"


@dataclass(frozen=True)
class Version:
    """One registered model version, as the retrain gate needs it."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`, loadable with `mlflow.pyfunc.load_model`."""
        return f"models:/{self.name}/{self.version}"


def champion(tracking_uri: str, name: str) -> Version | None:
    """The version behind alias `champion` of `name`, or None if there is none."""
    client = _client(tracking_uri)
    try:
        found = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return Version(name, str(found.version), found.run_id or "", dict(found.tags))


def register(
    tracking_uri: str,
    name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    description: str | None = None,
    model_description: str | None = None,
) -> Version:
    """Add `model_uri` as a new version of `name` (created if missing), with
    the version's `description`; `model_description` (what the registered
    model forecasts) is set on the model, replacing an older one."""
    client = _client(tracking_uri)
    try:
        client.create_registered_model(name, description=model_description)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        if model_description:
            client.update_registered_model(name, description=model_description)
    tags = {k: str(v) for k, v in tags.items()}
    with fluent_store(tracking_uri):  # the store resolves `models:/m-...` globally
        created = client.create_model_version(
            name, model_uri, run_id=run_id, tags=tags, description=description
        )
    return Version(name, str(created.version), run_id, tags)


def promote(tracking_uri: str, version: Version) -> None:
    """Point alias `champion` at `version`."""
    _client(tracking_uri).set_registered_model_alias(
        version.name, CHAMPION, version.version
    )


def tag_version(tracking_uri: str, version: Version, tags: dict[str, str]) -> None:
    """Add tags to an existing version."""
    client = _client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, str(value))


def run_behind(tracking_uri: str, model_uri: str, version: str | None) -> str | None:
    """The run that trained what `model_uri` served: `runs:/RUN/...`, or the
    run of registered `version` for a `models:/NAME...` URI (None if unknown)."""
    if model_uri.startswith("runs:/"):
        return model_uri[len("runs:/") :].split("/", 1)[0]
    if not (model_uri.startswith("models:/") and version):
        return None
    name = model_uri[len("models:/") :].split("@", 1)[0].split("/", 1)[0]
    try:
        return _client(tracking_uri).get_model_version(name, version).run_id or None
    except MlflowException:
        return None


def run_metrics(tracking_uri: str, run_id: str) -> dict[str, float]:
    """A run's latest metric values ({} if the run is gone)."""
    try:
        return dict(_client(tracking_uri).get_run(run_id).data.metrics)
    except MlflowException:
        return {}


def run_tags(tracking_uri: str, run_id: str) -> dict[str, str]:
    """A run's tags ({} if the run is gone)."""
    try:
        return dict(_client(tracking_uri).get_run(run_id).data.tags)
    except MlflowException:
        return {}


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)
