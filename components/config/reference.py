"""docs/configuration.md, generated from the experiment schema, so every key,
its type, default and meaning is written down once: in `components/config/schema.py`.

    python -m components.config.reference > docs/configuration.md

`tests/test_docs.py` fails when the file and the schema disagree.
"""

import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from components.config.schema import ExperimentConfig

HEADER = """# Configuration reference

Every key of an experiment, with its type, default and meaning. Generated from the
schema in `components/config/schema.py` by `python -m components.config.reference >
docs/configuration.md`; a test fails when this file is stale. Set keys in an
experiment's YAML (`conf/experiments/NAME.yaml`), in a part it pulls with
`defaults:`, or on the command line as `KEY=VALUE` (later wins). Unknown keys are
errors. How the settings play together: [training.md](training.md),
[panels.md](panels.md), [comparing.md](comparing.md), [operations.md](operations.md).
"""


def fields(model: type[BaseModel], prefix: str = ""):
    """(dotted key, field) of every leaf setting, in schema order."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from fields(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def type_name(annotation) -> str:
    """A schema type in words: `lstm` | `gru`, list of number, integer > 0."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in args)
    if origin is typing.Annotated:
        bounds = [m for m in annotation.__metadata__ if hasattr(m, "gt")]
        return type_name(args[0]) + (" > 0" if bounds else "")
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or unset" if type(None) in args else "")
    if origin is list:
        return f"list of {type_name(args[0])}"
    return {int: "integer", float: "number", str: "text", bool: "true \\| false"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def default_text(field) -> str:
    """The default as a user writes it in YAML."""
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def render() -> str:
    """The whole reference, one table per section."""
    lines = [HEADER]
    section = None
    for key, field in fields(ExperimentConfig):
        top = key.split(".")[0] if "." in key else ""
        if top != section:
            section = top
            title = f"`{top}`" if top else "Top level"
            lines += ["", f"## {title}", "", "| key | type | default | meaning |",
                      "| --- | --- | --- | --- |"]  # fmt: skip
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} "
            f"| {meaning} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
