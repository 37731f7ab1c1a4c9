"""The demo's node configuration: the embedded default, pointed at local servers.

`demo_config` loads the embedded default configuration (`tpir.config.load_config` with
no path), points the providers' ``base_url`` at the demo's provider simulators with
`Config.with_provider`, and moves the data folder and database into a temporary folder.
`write_config` writes a `Config` as a TOML file that ``tpir run --config`` reads, and
reads it back to check that the node will see exactly that configuration.

Every provider's policy sections are written out resolved. So the file repeats values
that the original file sets once per integration, and loads to the same configuration.
API keys are never written: the file keeps ``api_key_env``, and the node reads the key
from its own environment.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Final

from tpir.config import Config, Integration, NodeConfig, Provider, load_config
from tpir.config._schema import APPLIES_ONLY_WHEN

__all__ = ["DEMO_INTEGRATION", "config_to_toml", "demo_config", "write_config"]

logger = logging.getLogger(__name__)

DEMO_INTEGRATION: Final = "llm_provider"
"""The integration of the embedded default configuration that the demo calls."""

_PRIMARY: Final = "openai"
_SECONDARY: Final = "anthropic"
# Fields that are not TOML keys: the key itself comes from api_key_env at load time.
_SKIPPED_PROVIDER_FIELDS: Final = frozenset({"api_key"})


def demo_config(primary_url: str, secondary_url: str, data_dir: Path) -> Config:
    """Return the embedded default with the providers on the given URLs and the data
    folder (and its database) in ``data_dir``. Raises `ConfigError` for invalid URLs."""
    config = load_config()
    config = config.with_provider(DEMO_INTEGRATION, _PRIMARY, base_url=primary_url)
    config = config.with_provider(DEMO_INTEGRATION, _SECONDARY, base_url=secondary_url)
    # An empty database is derived from data_dir again, as when the file leaves it out.
    node = dataclasses.replace(config.node, data_dir=data_dir, database="")
    return dataclasses.replace(config, node=node)


def write_config(config: Config, path: Path) -> Path:
    """Write ``config`` to ``path`` as TOML and check that it loads back equal.

    Raises `ConfigError` when the written file does not load, and ValueError when it
    loads to a different configuration; both mean `config_to_toml` misses a case.
    """
    path.write_text(config_to_toml(config), encoding="utf-8")
    loaded = load_config(path)
    if loaded != config:
        raise ValueError(
            f"the configuration written to {path} loads back different: "
            f"{_first_difference(config, loaded)}"
        )
    logger.debug("wrote the demo configuration to %s", path)
    return path


def config_to_toml(config: Config) -> str:
    """Return ``config`` as TOML text in the layout that `tpir.config.load_config` reads."""
    lines = [f"# Written by tpir demo from {config.source}; the node reads it once at start."]
    _table(lines, "node", _fields(config.node))
    for integration in config.integrations:
        _integration(lines, integration)
    return "\n".join(lines) + "\n"


def _integration(lines: list[str], integration: Integration) -> None:
    scalars = {
        "name": integration.name,
        "tier": integration.tier,
        "timeout": integration.timeout,
    }
    _table(lines, "integrations", scalars, array=True)
    for provider in integration.providers:
        fields = {
            name: value
            for name, value in _fields(provider).items()
            if name not in _SKIPPED_PROVIDER_FIELDS
        }
        fields["headers"] = dict(provider.headers)
        _table(lines, "integrations.providers", fields, array=True)


def _fields(value: Any) -> dict[str, Any]:
    """Return a config dataclass's init fields by name, None values left out."""
    return {
        field.name: getattr(value, field.name)
        for field in dataclasses.fields(value)
        if field.init and getattr(value, field.name) is not None
    }


def _table(lines: list[str], name: str, fields: Mapping[str, Any], *, array: bool = False) -> None:
    """Append a table header, its scalar keys, then its sub-tables."""
    lines.append("")
    lines.append(f"[[{name}]]" if array else f"[{name}]")
    tables: dict[str, dict[str, Any]] = {}
    for key, value in fields.items():
        if isinstance(value, NodeConfig | Provider):
            raise TypeError(f"{name}.{key}: nested {type(value).__name__} is written separately")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            tables[key] = _section_fields(key, _fields(value))
        elif isinstance(value, Mapping):
            if value:
                tables[key] = dict(value)
        else:
            lines.append(f"{key} = {_toml_value(value, f'{name}.{key}')}")
    for key, sub_fields in tables.items():
        _table(lines, f"{name}.{key}", sub_fields)


def _section_fields(section: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Drop the keys that the loader rejects under the section's current mode.

    For example ``window_seconds`` applies only when ``window_type`` is ``"time"``, and
    the loader rejects it beside ``window_type = "count"``.
    """
    kept: dict[str, Any] = {}
    for key, value in fields.items():
        rule = APPLIES_ONLY_WHEN.get((section, key))
        if rule is not None:
            mode_key, _, modes = rule
            if str(fields.get(mode_key)) not in modes:
                continue
        kept[key] = value
    return kept


def _toml_value(value: Any, where: str) -> str:
    """Return ``value`` as a TOML value; ``where`` names it in errors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _toml_value(value.value, where)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | PurePath):
        # A JSON string is a valid TOML basic string: the same quotes and escapes.
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, frozenset | set):
        # Sorted so that the file is the same on every run: text first, then numbers.
        items = sorted(value, key=lambda item: (not isinstance(item, str), str(item)))
        return _toml_value(items, where)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item, where) for item in value) + "]"
    raise TypeError(f"{where}: cannot write a {type(value).__name__} as TOML: {value!r}")


def _first_difference(expected: Any, actual: Any, path: str = "config") -> str:
    """Return the path and values of the first field where two configurations differ."""
    if dataclasses.is_dataclass(expected) and type(expected) is type(actual):
        for field in dataclasses.fields(expected):
            if not field.compare:
                continue
            left, right = getattr(expected, field.name), getattr(actual, field.name)
            if left != right:
                return _first_difference(left, right, f"{path}.{field.name}")
    if isinstance(expected, tuple) and isinstance(actual, tuple) and len(expected) == len(actual):
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            if left != right:
                return _first_difference(left, right, f"{path}[{index}]")
    return f"{path} is {actual!r}, expected {expected!r}"
