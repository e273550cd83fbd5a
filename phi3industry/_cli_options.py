"""CLI flags derived from the config dataclasses, so that flags and YAML keys are written once."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from phi3industry.config import _ConfigBase

_F = TypeVar("_F", bound=Callable[..., Any])
_ConfigT = TypeVar("_ConfigT", bound=_ConfigBase)


def _option_type(annotation: Any) -> Any:
    """Map a config field's type to the type typer parses (always optional: unset = keep)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        # e.g. ``list[str] | str``: take it as a comma-separated string.
        if str in args:
            return str | None
        return _option_type(args[0])
    if origin is list:
        return list[str] | None
    return annotation | None


def config_options(
    config_cls: type[_ConfigBase], *, skip: tuple[str, ...] = (), panel: str = "Settings"
) -> Callable[[_F], _F]:
    """Add one ``--flag`` per field of ``config_cls`` to a typer command.

    The decorated function receives the flags the user actually gave as a dict in its
    ``overrides`` keyword argument.

    Args:
        config_cls: The config dataclass whose fields become flags.
        skip: Field names not to expose (the command sets them itself).
        panel: Heading under which ``--help`` lists these flags.

    Returns:
        The decorator.
    """
    hints = typing.get_type_hints(config_cls)

    def decorate(func: _F) -> _F:
        signature = inspect.signature(func)
        # Resolve the command's own string annotations (PEP 563) so typer sees ``Annotated``.
        own_hints = typing.get_type_hints(func, include_extras=True)
        own = [
            p.replace(annotation=own_hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name != "overrides"
        ]
        taken = {p.name for p in own}
        added: list[inspect.Parameter] = []
        for fld in dataclasses.fields(config_cls):  # type: ignore[arg-type]
            if fld.name in skip or fld.name in taken:
                continue
            flag = f"--{fld.name.replace('_', '-')}"
            if hints[fld.name] is bool:
                flag = f"{flag}/--no-{fld.name.replace('_', '-')}"
            option = typer.Option(
                None,
                flag,
                help=fld.metadata.get("help", ""),
                rich_help_panel=panel,
                show_default=False,
            )
            added.append(
                inspect.Parameter(
                    fld.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=option,
                    annotation=_option_type(hints[fld.name]),
                )
            )
        added_names = [p.name for p in added]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            overrides = {
                name: kwargs.pop(name) for name in added_names if kwargs.get(name) is not None
            }
            for name in added_names:
                kwargs.pop(name, None)
            return func(*args, overrides=overrides, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def build_config(
    config_cls: type[_ConfigT], config_file: Path | None, overrides: dict[str, Any]
) -> _ConfigT:
    """Build a config from an optional YAML file, then the flags given on the command line."""
    data: dict[str, Any] = {}
    if config_file is not None:
        data = config_cls.from_yaml(config_file).to_dict()
    data.update(overrides)
    return config_cls.from_dict(data)
