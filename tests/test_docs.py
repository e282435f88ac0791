"""The written reference stays true to the code it describes."""

from pathlib import Path

from components.config import ExperimentConfig
from components.config_reference import fields, render

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_configuration_reference_is_generated_from_the_current_schema():
    written = (DOCS / "configuration.md").read_text()
    assert written == render(), (
        "docs/configuration.md is stale: run "
        "`python -m components.config_reference > docs/configuration.md`"
    )


def test_every_setting_says_what_it_means():
    undocumented = [key for key, field in fields(ExperimentConfig) if not field.description]
    assert undocumented == [], f"add a `description` to these keys: {undocumented}"
    keys = [key for key, _ in fields(ExperimentConfig)]
    assert "evaluate.backtest.folds" in keys and "model.quantiles" in keys
    assert len(keys) == len(set(keys))
