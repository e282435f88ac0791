"""A package's public surface, imported on first use.

Each package of `components/` names its public functions and classes once, in
its `__init__`, and where each lives; nothing is imported until a name is read,
so `import components.data` stays as cheap as the CLI needs (Darts'
`utils/_lazy.py` does the same).
"""

import importlib
from collections.abc import Callable


def lazy_surface(package: str, surface: dict[str, str]) -> tuple[Callable, Callable]:
    """`__getattr__` and `__dir__` for `package`, whose public names map to
    the submodule that defines each (a submodule maps to itself)."""

    def __getattr__(name: str):
        if name not in surface:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{surface[name]}")
        return module if surface[name] == name else getattr(module, name)

    def __dir__() -> list[str]:
        return sorted(surface)

    return __getattr__, __dir__
