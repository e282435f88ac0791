"""The written reference stays true to the code it describes."""

from pathlib import Path

from components.config.reference import fields, render
from components.config.schema import ExperimentConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_configuration_reference_is_generated_from_the_current_schema():
    written = (DOCS / "configuration.md").read_text()
    assert written == render(), (
        "docs/configuration.md is stale: run "
        "`python -m components.config.reference > docs/configuration.md`"
    )


def test_every_setting_says_what_it_means():
    undocumented = [key for key, field in fields(ExperimentConfig) if not field.description]
    assert undocumented == [], f"add a `description` to these keys: {undocumented}"
    keys = [key for key, _ in fields(ExperimentConfig)]
    assert "evaluate.backtest.folds" in keys and "model.quantiles" in keys
    assert len(keys) == len(set(keys))


def test_every_picture_and_relative_link_in_the_docs_exists():
    import re

    pages = [DOCS.parent / "README.md", *DOCS.glob("*.md")]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.name} -> {target}")
    assert missing == [], missing
    readme = (DOCS.parent / "README.md").read_text()
    assert "](docs/images/runs.png)" in readme.replace("\n", " ")
