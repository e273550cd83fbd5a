"""CLI flags derived from the config dataclasses, so that flags and YAML keys are written once.

A field ``chunk_size`` is the flag ``--chunk-size``; a field of a nested config is
``--parent.field`` (``--pipeline.k``, ``--endpoint.base-url``), as its YAML key sits under
``parent:``. A command may take the flags of several configs (``serve``: the pipeline's and the
server's); one YAML file then holds the keys of all of them, each read by the config that has
it.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import typer

from phi3industry._config import ConfigBase, merge_settings, read_yaml, short_repr
from phi3industry.errors import ConfigError

_F = TypeVar("_F", bound=Callable[..., Any])
_ConfigT = TypeVar("_ConfigT", bound=ConfigBase)


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


@dataclass(frozen=True)
class Flag:
    """One settings flag: its ``--name``, where it goes in the settings, its field."""

    flag: str
    path: tuple[str, ...]
    help: str
    annotation: Any

    @property
    def param(self) -> str:
        """The Python parameter name typer passes the value as."""
        return "__".join(self.path)


def config_flags(config_cls: type[ConfigBase], prefix: tuple[str, ...] = ()) -> list[Flag]:
    """Every flag of ``config_cls``, nested configs' fields as ``--parent.field``."""
    hints = typing.get_type_hints(config_cls)
    nested = config_cls.nested_configs()
    out: list[Flag] = []
    for fld in fields(config_cls):  # type: ignore[arg-type]
        path = (*prefix, fld.name)
        if fld.name in nested:
            out += config_flags(nested[fld.name], path)
            continue
        name = ".".join(p.replace("_", "-") for p in path)
        out.append(Flag(f"--{name}", path, fld.metadata.get("help", ""), hints[fld.name]))
    return out


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        out = {key: out}
    return out


def config_options(
    *config_classes: type[ConfigBase], skip: tuple[str, ...] = (), panel: str = "Settings"
) -> Callable[[_F], _F]:
    """Add one ``--flag`` per field of the config classes to a typer command.

    The decorated function receives the flags the user actually gave in its ``overrides``
    keyword argument, as nested settings (``{"pipeline": {"k": 2}}`` for ``--pipeline.k 2``).

    Args:
        *config_classes: The config dataclasses whose fields become flags.
        skip: Flag names (without dashes, e.g. ``"path"`` or ``"pipeline.k"``) not to expose.
        panel: Heading under which ``--help`` lists these flags.

    Returns:
        The decorator.

    Raises:
        ValueError: If two configs would give the same flag (a programming error).
    """
    flags: list[Flag] = []
    seen: set[str] = set()
    for cls in config_classes:
        for flag in config_flags(cls):
            if flag.flag[2:] in skip or ".".join(flag.path) in skip:
                continue
            if flag.flag in seen:
                raise ValueError(f"Two configs define the flag {flag.flag}.")
            seen.add(flag.flag)
            flags.append(flag)

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
        added: list[tuple[inspect.Parameter, Flag]] = []
        for flag in flags:
            if flag.param in taken:
                continue
            decl = flag.flag
            if _option_type(flag.annotation) == (bool | None):
                decl = f"{decl}/--no-{flag.flag[2:]}"
            option = typer.Option(
                None, decl, help=flag.help, rich_help_panel=panel, show_default=False
            )
            param = inspect.Parameter(
                flag.param,
                inspect.Parameter.KEYWORD_ONLY,
                default=option,
                annotation=_option_type(flag.annotation),
            )
            added.append((param, flag))

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            overrides: dict[str, Any] = {}
            for param, flag in added:
                value = kwargs.pop(param.name, None)
                if value is not None:
                    overrides = merge_settings(overrides, _nest(flag.path, value))
            return func(*args, overrides=overrides, **kwargs)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=own + [p for p, _ in added]
        )
        return wrapper  # type: ignore[return-value]

    return decorate


def build_config(
    config_cls: type[_ConfigT], config_file: Path | None, overrides: dict[str, Any]
) -> _ConfigT:
    """Build a config from an optional YAML file, then the flags given on the command line."""
    data: dict[str, Any] = {}
    if config_file is not None:
        data = config_cls.from_yaml(config_file).to_dict()
    return config_cls.from_dict(merge_settings(data, overrides))


def build_configs(
    config_classes: tuple[type[ConfigBase], ...],
    config_file: Path | None,
    overrides: dict[str, Any],
) -> list[Any]:
    """Build several configs from one YAML file and one set of flags, each key to its owner.

    Raises:
        ConfigError: For a key no config has (naming the configs), or bad values.
    """
    data = read_yaml(config_file) if config_file is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {config_file} must hold a mapping of settings, got {type(data).__name__}."
        )
    data = merge_settings(data, overrides)
    parts: list[dict[str, Any]] = [{} for _ in config_classes]
    for key, value in data.items():
        owners = [i for i, cls in enumerate(config_classes) if key in cls.field_names()]
        if not owners:
            names = " or ".join(cls.__name__ for cls in config_classes)
            moved = [cls for cls in config_classes if key in cls.moved_settings]
            if moved:
                moved[0].from_dict({key: value})  # raises the "has moved" message
            raise ConfigError(f"Unknown setting {short_repr(key)}: it is not a {names} setting.")
        parts[owners[0]][key] = value
    return [cls.from_dict(part) for cls, part in zip(config_classes, parts, strict=True)]
