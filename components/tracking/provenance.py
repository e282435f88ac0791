"""What a run needs to be repeated: package versions and the project's commit."""

import functools
import hashlib
import subprocess
from importlib.metadata import PackageNotFoundError, version

from components.config.paths import project_root

PACKAGES = ("rnnflow", "tensorflow", "keras", "numpy", "pandas", "prefect", "mlflow")


def pinned(packages: list[str]) -> list[str]:
    """`name==version` of the installed packages, e.g. for a model's requirements."""
    return [f"{name}=={version(name)}" for name in packages]


def package_versions() -> dict[str, str]:
    """`versions.<package>` params for the packages that decide a run's numbers."""
    found = {}
    for name in PACKAGES:
        try:
            found[f"versions.{name}"] = version(name)
        except PackageNotFoundError:
            found[f"versions.{name}"] = "not installed"
    return found


def git_commit() -> dict[str, str]:
    """MLflow's own source tags for the project checkout: the commit, and
    whether files differed from it. Empty outside a git checkout."""
    root = project_root()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        if not commit:
            return {}
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"mlflow.source.git.commit": commit, "git_dirty": str(dirty).lower()}


@functools.cache
def code_digest() -> str:
    """Digest of the project's Python sources (components/, flows/): results
    cached by it are recomputed after any code change, committed or not."""
    root = project_root()
    digest = hashlib.sha256()
    for path in sorted(
        p for package in ("components", "flows") for p in (root / package).rglob("*.py")
    ):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
