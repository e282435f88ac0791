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


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation
    dropped (hyphens and underscores kept), spaces to hyphens."""
    import re

    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    import re

    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not in code
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = _slug(heading)
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def test_every_anchor_a_link_names_exists():
    import re

    root = DOCS.parent
    pages = [root / "README.md", root / "bench" / "README.md", *DOCS.glob("*.md")]
    broken = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text()):
            linked = (page.parent / target) if target else page
            if linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(root)} -> {target}#{anchor}")
    assert broken == [], broken


def test_the_anchor_check_finds_a_broken_anchor(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# Set-up on a fresh machine (Python 3.11+)\n## `rnnflow ui`\n")
    assert _anchors(page) == {"set-up-on-a-fresh-machine-python-311", "rnnflow-ui"}
