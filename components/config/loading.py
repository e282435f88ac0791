"""Loading an experiment: YAML parts composed by `defaults:`, the
experiment's inline keys, dotted command-line overrides, then one
validation that names the file and the key.

Precedence, lowest first: schema defaults, parts named in `defaults:`, the
experiment's inline keys, command-line overrides.

Example:
    >>> cfg = load_experiment("gas_furnace", ["model.kind=gru", "train.epochs=5"])
    >>> cfg.model.kind, cfg.train.epochs
    ('gru', 5)
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from components.common.errors import ConfigError, invalid_value
from components.config.paths import conf_dirs, resolve_experiment_path
from components.config.schema import SECTIONS, ExperimentConfig


def load_experiment(
    experiment: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Load, compose, override and validate an experiment.

    Args:
        experiment: a name under `conf/experiments/`, a path to a YAML file, or
            None for the `default` experiment.
        overrides: `dotted.key=value` strings; values are parsed as YAML.

    Raises:
        ConfigError: naming the file and key, and what was expected.
    """
    path = resolve_experiment_path(experiment or "default")
    raw = _read_yaml(path)
    raw.setdefault("name", path.stem)
    merged = _compose(raw, path)
    for override in overrides or []:
        _apply_override(merged, override)
    return validate_config(merged, source=str(path))


def validate_config(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate a plain dict; turn pydantic's errors into one readable message."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe_error(err) for err in exc.errors()]
        raise ConfigError(
            f"{source}: invalid configuration:\n" + "\n".join(lines)
        ) from None


def with_settings(
    config: ExperimentConfig, settings: dict[str, Any]
) -> ExperimentConfig:
    """A copy of `config` with dotted keys set, e.g. {"model.units": [16]};
    validated like a loaded experiment."""
    raw = config.model_dump()
    for key, value in settings.items():
        _set_dotted(raw, key, value, f"{key}={value!r}")
    return validate_config(raw, source=f"{config.name} with {settings}")


def to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML, for logging and for reproducing a run.

    URLs lose credentials and query strings (`redact_url`): this text is stored.
    """
    return yaml.safe_dump(
        config.model_dump(mode="json"), sort_keys=False
    )  # URLs redacted


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r}: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML (safe subset): {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections ({', '.join(SECTIONS)}), "
            f"got {type(data).__name__}."
        )
    return data


def _compose(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Expand `defaults: {section: part}` into the sections, inline keys winning."""
    raw = dict(raw)
    defaults = raw.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(
            f"{path}: key `defaults` expected a mapping like "
            f"{{model: lstm}}, got {type(defaults).__name__}."
        )
    merged: dict[str, Any] = {}
    for section, part in defaults.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{path}: key `defaults.{section}` is not a section; "
                f"expected one of {list(SECTIONS)}."
            )
        merged[section] = _read_part(section, str(part), path)
    return _deep_merge(merged, raw)


def _read_part(section: str, part: str, experiment_path: Path) -> dict[str, Any]:
    searched = [experiment_path.parent.parent, *conf_dirs()]
    for conf in searched:
        found = conf / section / f"{part}.yaml"
        if found.is_file():
            return _read_yaml(found)
    raise ConfigError(
        f"{experiment_path}: key `defaults.{section}` names {part!r}, but no "
        f"file {section}/{part}.yaml exists under {[str(c) for c in searched]}."
    )


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(config: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"Received an invalid override {override!r}, expected KEY=VALUE "
            "with a dotted key, e.g. train.epochs=50."
        )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"Override {override!r}: value is not valid YAML: {exc}"
        ) from None
    _set_dotted(config, key.strip(), value, override)


def _set_dotted(config: dict[str, Any], key: str, value: Any, what: str) -> None:
    """config["a"]["b"]["c"] = value for key "a.b.c", creating sections."""
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"Override {what!r}: `{part}` is not a section.")
        node = child
    node[parts[-1]] = value


def _describe_error(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        section = _section_model(err["loc"][:-1])
        valid = sorted(section.model_fields) if section else []
        return f"  - `{key}`: unknown key; valid keys here: {valid}"
    message = err["msg"].removeprefix("Value error, ")
    if not key:  # a rule across keys; the message names them
        return f"  - {message}"
    return f"  - {invalid_value(key, _expectation(err, message), err.get('input'))}"


def _expectation(err: dict[str, Any], message: str) -> str:
    """What a setting should have been, from pydantic's error: "a positive
    integer", "one of [...]" (our validators already say "expected ...")."""
    kind, ctx = err["type"], err.get("ctx") or {}
    whole = _integer_setting(err["loc"])
    if kind == "greater_than" and ctx.get("gt") == 0:
        return "a positive integer" if whole else "a positive number"
    if kind == "greater_than_equal" and ctx.get("ge") == 0:
        return "a non-negative integer" if whole else "a non-negative number"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), "")
        relation = kind.replace("_", " ").replace("equal", "or equal to")
        return f"a number {relation} {bound}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "an integer"
    if kind in ("float_parsing", "float_type"):
        return "a number"
    if kind in ("bool_parsing", "bool_type"):
        return "true or false"
    if kind == "literal_error" and "expected" in ctx:
        return f"one of {ctx['expected']}"
    return message.removeprefix("expected ")


def _integer_setting(loc: tuple) -> bool:
    """Whether the setting at `loc` holds whole numbers (`train.epochs`,
    `model.units.1`) rather than any number (`train.learning_rate`)."""
    section = _section_model(loc[:1]) or ExperimentConfig
    field = section.model_fields.get(str(loc[1])) if len(loc) > 1 else None
    text = str(getattr(field, "annotation", ""))
    return "int" in text and "float" not in text


def _section_model(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
