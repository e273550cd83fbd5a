"""What every config dataclass shares: dict/YAML round trips, type checks, nesting, moved keys.

Each sub-package defines its own config (``retrieval.RetrieverConfig``,
``tuning.TunerConfig``, ``pipeline.PipelineConfig``, ``serving.ServerConfig``,
``evaluation.EvalConfig``) on top of :class:`ConfigBase`. A field whose type is another config
is nested: it is a mapping in YAML and in ``from_dict``, and its fields become
``--parent.field`` flags on the command line. Cross-field checks run in ``__post_init__``, so
that a bad config fails when it is built, naming the field, the bad value and the fix.

Example:
    >>> from phi3industry.retrieval import RetrieverConfig
    >>> cfg = RetrieverConfig(path="my-index", chunk_size=256, chunk_overlap=32)
    >>> RetrieverConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from phi3industry.errors import ConfigError

_ConfigT = TypeVar("_ConfigT", bound="ConfigBase")

# Bounded repr for values in messages: a YAML alias bomb or a cyclic value stays short.
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 3, 6, 6, 80, 80
short_repr = _repr.repr

#: torch.manual_seed and OpenAI-compatible endpoints take a signed 64-bit seed.
SEED_MAX = 2**63


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def check_positive_int(value: Any, name: str) -> None:
    """Refuse anything but an integer above zero (booleans included) for field ``name``."""
    check(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"{name} must be a positive integer, got {value!r}.",
    )


def split_list(value: Any) -> Any:
    """A comma-separated string as a list of its non-empty items; anything else unchanged."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _unpath(value: Any) -> Any:
    """``Path`` values (and items) as strings, so that a config holds YAML-ready values."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, os.PathLike) for v in value):
        return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
    return value


def nested_config_class(hint: Any) -> type[ConfigBase] | None:
    """The config class a field of type ``hint`` nests (``X`` or ``X | None``), else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        return nested_config_class(arms[0]) if len(arms) == 1 else None
    if isinstance(hint, type) and issubclass(hint, ConfigBase):
        return hint
    return None


def _type_problem(value: Any, hint: Any) -> str | None:
    """What a field of type ``hint`` expects, or None if ``value`` fits it.

    ``list[str]`` fields also take one string (a single item, or comma-separated items),
    as the CLI and the ``__post_init__`` checks do.
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        problems = [_type_problem(value, arm) for arm in arms]
        return None if None in problems else " or ".join(p for p in problems if p)
    if hint is type(None):
        return None if value is None else "null"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "a number"
        try:
            return "a number (not NaN)" if math.isnan(float(value)) else None
        except OverflowError:
            return "a number of reasonable size"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
        if isinstance(value, str) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        ):
            return None
        return "a list of strings"
    nested = nested_config_class(hint)
    if nested is not None:
        return (
            None
            if isinstance(value, (dict, nested))
            else f"a mapping of {nested.__name__} settings"
        )
    return None  # a type these configs do not use: leave it to __post_init__


def merge_settings(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``changes``, nested mappings merged key by key (not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


class ConfigBase:
    """Shared ``to_dict`` / ``from_dict`` / ``from_yaml`` / ``to_yaml`` for config dataclasses.

    Subclasses may list settings that moved in :attr:`moved_settings` (old key -> where it
    lives now); ``from_dict`` then names the new place instead of "unknown setting".
    """

    #: Old key -> its new place (``"pipeline.k"``, or a sentence naming another config).
    moved_settings: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict (YAML/JSON-ready; nested configs as dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]

    @classmethod
    def field_names(cls) -> list[str]:
        """Return the names of the config's fields, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def nested_configs(cls) -> dict[str, type[ConfigBase]]:
        """Field name -> config class, for the fields that hold another config."""
        hints = typing.get_type_hints(cls)
        found = {name: nested_config_class(hints[name]) for name in cls.field_names()}
        return {name: sub for name, sub in found.items() if sub is not None}

    @classmethod
    def _unknown(cls, key: Any, allowed: list[str]) -> ConfigError:
        if isinstance(key, str) and key in cls.moved_settings:
            return ConfigError(
                f"{cls.__name__} setting {key!r} has moved: set {cls.moved_settings[key]} "
                "instead (in YAML, a nested key goes under its section, e.g. "
                "'endpoint:' then '  model: NAME')."
            )
        close = difflib.get_close_matches(str(key)[:100], allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return ConfigError(
            f"Unknown {cls.__name__} setting {short_repr(key)}.{hint} "
            f"Allowed settings: {', '.join(allowed)}."
        )

    @classmethod
    def from_dict(cls: type[_ConfigT], data: dict[str, Any]) -> _ConfigT:
        """Build a config from a dict, rejecting unknown keys with a suggestion.

        Values are checked against the fields' types first (``Path`` values become strings;
        a ``list[str]`` field also takes one string; a nested config takes a mapping), so
        that a mistyped YAML value is named instead of failing somewhere inside the checks.

        Args:
            data: Mapping of field names to values.

        Returns:
            The config.

        Raises:
            ConfigError: If ``data`` is not a mapping, has a key that is not a field (or one
                that moved), a value of the wrong type, or a value the config's checks refuse.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                f"{cls.__name__} expects a mapping of settings, got {type(data).__name__}."
            )
        allowed = cls.field_names()
        hints = typing.get_type_hints(cls)
        data = {key: _unpath(value) for key, value in data.items()}
        for key, value in data.items():
            if key not in allowed:
                raise cls._unknown(key, allowed)
            expected = _type_problem(value, hints[key])
            if expected is not None:
                # PyYAML reads 1e-3 (no dot) as a string.
                yaml_hint = " (in YAML write 1.0e-3, not 1e-3)" if "number" in expected else ""
                raise ConfigError(
                    f"{cls.__name__} setting {key!r} must be {expected}, got "
                    f"{type(value).__name__} {short_repr(value)}{yaml_hint}."
                )
            nested = nested_config_class(hints[key])
            if nested is not None and isinstance(value, dict):
                try:
                    data[key] = nested.from_dict(value)
                except ConfigError as exc:
                    raise ConfigError(f"In {cls.__name__}.{key}: {exc}") from exc
        try:
            return cls(**data)
        except ConfigError:
            raise
        except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise ConfigError(f"Invalid {cls.__name__}: {exc}") from exc

    @classmethod
    def from_yaml(cls: type[_ConfigT], path: str | Path) -> _ConfigT:
        """Load a config from a YAML file.

        Args:
            path: Path of a YAML file holding a mapping of settings.

        Returns:
            The config.

        Raises:
            ConfigError: If the file is missing, is not valid YAML, or holds bad settings.
        """
        return cls.from_dict(read_yaml(path))

    def to_yaml(self, path: str | Path) -> None:
        """Write the config to a YAML file."""
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def read_yaml(path: str | Path) -> Any:
    """The settings in a YAML file (an empty file is an empty mapping).

    Raises:
        ConfigError: If the file is missing, unreadable or not YAML.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"Config file not found: {path}. Check the path.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"Config file {path} is nested too deeply to be a config.") from exc
    return {} if data is None else data
