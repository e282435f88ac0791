"""Where the project and its experiments live: the checkout, the conf
folders searched (./conf first), and an experiment's YAML file by name."""

from pathlib import Path

from components.common.errors import ConfigError


def project_root() -> Path:
    """The checkout that holds `components/`, `conf/` and `mlruns/`."""
    return Path(__file__).resolve().parents[2]


def conf_dirs() -> list[Path]:
    """Where experiments and parts are looked up: ./conf first, then the project's."""
    dirs = [Path.cwd() / "conf", project_root() / "conf"]
    unique = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def available_experiments() -> list[str]:
    """Names of the experiments under every conf dir."""
    names = {p.stem for d in conf_dirs() for p in (d / "experiments").glob("*.yaml")}
    return sorted(names)


def resolve_experiment_path(experiment: str | Path) -> Path:
    """A YAML path as given, or `conf/experiments/<name>.yaml` from a conf dir."""
    candidate = Path(experiment)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"Experiment file {str(candidate)!r} does not exist.")
        return candidate
    for conf in conf_dirs():
        found = conf / "experiments" / f"{experiment}.yaml"
        if found.is_file():
            return found
    raise ConfigError(
        f"Unknown experiment {str(experiment)!r}: no file "
        f"conf/experiments/{experiment}.yaml. Available: {available_experiments()}; "
        "or pass a path to a YAML file."
    )
