"""Load the configuration from TOML into frozen, validated dataclasses.

`load_config` reads a file (or the embedded default), `parse_config` reads a string.
Both check every table for unknown keys, merge each provider's policy sections over its
integration's, build the dataclasses (which validate themselves) and raise one
`ConfigError` that lists every problem found. API keys are read from the environment
variables that ``api_key_env`` names.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from tpir.config import _schema as schema
from tpir.config._checks import (
    MISSING,
    NAME_PATTERN,
    Bounds,
    describe_value,
    toml_type_name,
)
from tpir.config._layers import Layer, Merged, merge_layers, relocate
from tpir.config.errors import ConfigError, ConfigIssue, join_path
from tpir.config.model import (
    DEFAULT_INTEGRATION_TIMEOUT,
    INTEGRATION_TIMEOUT_BOUNDS,
    Config,
    Integration,
)
from tpir.config.node import NodeConfig, RetentionConfig, default_data_dir, expand_home
from tpir.config.provider import ENV_VAR_PATTERN, Provider
from tpir.config.secret import SecretStr

__all__ = ["DEFAULT_SOURCE", "default_config_text", "load_config", "parse_config"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SOURCE = "<embedded default>"
"""The `Config.source` of the embedded default configuration."""

_DEFAULT_RESOURCE = "default.toml"
_USE_API_KEY_ENV = (
    "Put the key in an environment variable and set api_key_env in the provider's table "
    "to its name."
)


def default_config_text() -> str:
    """Return the text of the embedded default configuration, ``tpir/config/default.toml``."""
    return resources.files("tpir.config").joinpath(_DEFAULT_RESOURCE).read_text(encoding="utf-8")


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a configuration file, or the embedded default when ``path`` is None.

    ``environ`` supplies the API key variables and the data folder defaults, and is
    ``os.environ`` when None. Relative paths in the file are relative to the file's folder.
    Raises `ConfigError` when the file cannot be read or is invalid.
    """
    if path is None:
        return parse_config(default_config_text(), DEFAULT_SOURCE, environ=environ)

    file_path = Path(path).expanduser()
    source = str(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError.single("", f"failed to read the file: {reason}", source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError.single("", f"the file is not valid UTF-8: {exc}", source) from exc
    return parse_config(text, source, environ=environ, base_dir=file_path.absolute().parent)


def parse_config(
    text: str,
    source: str = "<string>",
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Parse and validate configuration text.

    ``source`` names the text in error messages and in `Config.source`. Relative paths
    are relative to ``base_dir``, by default the current working folder. Raises
    `ConfigError` listing every problem found.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.single("", f"invalid TOML: {exc}", source) from exc

    env = os.environ if environ is None else environ
    folder = Path.cwd() if base_dir is None else Path(base_dir).absolute()
    config = _Builder(source, env, folder).build(document)

    if not config.node.listens_on_loopback:
        logger.warning(
            "node.listen_address is %s, which is reachable from other hosts: the actor "
            "transport unpickles every message it receives, so any host that can reach "
            "it can run code as this node's user",
            config.node.listen_address,
        )
    logger.debug(
        "loaded configuration from %s: %d integrations, %d providers",
        source,
        len(config.integrations),
        sum(len(integration.providers) for integration in config.integrations),
    )
    return config


class _Builder:
    """One pass over a parsed document, collecting every issue before raising."""

    def __init__(self, source: str, environ: Mapping[str, str], base_dir: Path) -> None:
        self._source = source
        self._environ = environ
        self._base_dir = base_dir
        self._issues: list[ConfigIssue] = []

    def build(self, document: dict[str, Any]) -> Config:
        self._check_keys("", document, schema.TOP_LEVEL_KEYS)
        node = self._build_node(document.get("node", {}))
        integrations = self._build_integrations(document.get("integrations", []))

        if node is None:
            # A stand-in, so that the checks across integrations still run in this pass.
            node = NodeConfig(data_dir=self._base_dir)
        config = self._construct(
            Config,
            "",
            {"node": node, "integrations": tuple(integrations), "source": self._source},
        )
        if self._issues or config is None:
            raise ConfigError(self._issues, self._source)
        return config

    # Shared steps

    def _issue(self, path: str, message: str) -> None:
        self._issues.append(ConfigIssue(path, message))

    def _check_keys(self, path: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        allowed_keys = sorted(allowed)
        for key in table:
            if key in allowed_keys:
                continue
            key_path = join_path(path, key)
            if schema.looks_like_secret(key):
                self._issue(
                    key_path,
                    f"{key!r} looks like a credential, which must not be written in the "
                    f"configuration file (value not shown). {_USE_API_KEY_ENV}",
                )
                continue
            message = f"unknown key {key!r} (allowed keys: {', '.join(allowed_keys)})"
            close = difflib.get_close_matches(key, allowed_keys, n=1)
            if close:
                message += f". Did you mean {close[0]!r}?"
            self._issue(key_path, message)

    def _expect_table(self, path: str, value: Any) -> bool:
        if isinstance(value, dict):
            return True
        self._issue(
            path, f"expected a table, got {describe_value(value)} ({toml_type_name(value)})"
        )
        return False

    def _construct(
        self,
        cls: type[T],
        path: str,
        kwargs: Mapping[str, Any],
        *,
        origins: Mapping[str, str] | None = None,
        drop_path: str | None = None,
    ) -> T | None:
        """Build ``cls(**kwargs)``, recording its issues under ``path`` instead of raising.

        ``origins`` maps the keys of a merged policy section to the full paths where they
        were set (see `relocate`). Without it, issue paths are simply prefixed.

        Issues whose relative path equals ``drop_path`` are left out: the caller passes
        it when the value there is known to be incomplete because of earlier issues.
        """
        try:
            return cls(**kwargs)
        except ConfigError as error:
            for issue in error.issues:
                if drop_path is not None and issue.path == drop_path:
                    continue
                if origins is None:
                    self._issues.append(issue.with_prefix(path))
                else:
                    self._issues.append(relocate(issue, path, origins))
            return None

    # [node]

    def _build_node(self, table: Any) -> NodeConfig | None:
        if not self._expect_table("node", table):
            return None
        self._check_keys("node", table, schema.NODE_KEYS)
        kwargs = {key: value for key, value in table.items() if key in schema.NODE_KEYS}

        data_dir = table.get("data_dir")
        if data_dir is None:
            kwargs["data_dir"] = default_data_dir(self._environ)
        elif isinstance(data_dir, str) and data_dir:
            kwargs["data_dir"] = self._base_dir / expand_home(data_dir, self._environ)

        database = table.get("database")
        if isinstance(database, str) and database.startswith("~"):
            kwargs["database"] = str(expand_home(database, self._environ))

        if "recovery_point_retention" in table:
            retention = self._build_retention(table["recovery_point_retention"])
            if retention is None:
                kwargs.pop("recovery_point_retention")
            else:
                kwargs["recovery_point_retention"] = retention

        return self._construct(NodeConfig, "node", kwargs)

    def _build_retention(self, value: Any) -> RetentionConfig | None:
        path = "node.recovery_point_retention"
        if isinstance(value, int) and not isinstance(value, bool):
            return self._construct(RetentionConfig, path, {"count": value})
        if isinstance(value, dict):
            self._check_keys(path, value, schema.RETENTION_KEYS)
            known = {key: item for key, item in value.items() if key in schema.RETENTION_KEYS}
            return self._construct(RetentionConfig, path, known)
        self._issue(
            path,
            f"expected an integer (the count) or a table with count and max_age, got "
            f"{describe_value(value)} ({toml_type_name(value)})",
        )
        return None

    # [[integrations]]

    def _build_integrations(self, value: Any) -> list[Integration]:
        if not isinstance(value, list):
            self._issue(
                "integrations",
                f"expected an array of tables ([[integrations]]), got {describe_value(value)} "
                f"({toml_type_name(value)})",
            )
            return []
        built = []
        names: set[str] = set()
        for index, table in enumerate(value):
            integration = self._build_integration(index, table, names)
            if integration is not None:
                built.append(integration)
        return built

    def _build_integration(self, index: int, table: Any, names: set[str]) -> Integration | None:
        path = _element_path("integrations", index, table, names)
        if not self._expect_table(path, table):
            return None
        self._check_keys(path, table, schema.INTEGRATION_KEYS)

        layers = {}
        for section in schema.SECTIONS:
            if section in table:
                layer = self._read_section(section, f"{path}.{section}", table[section])
                if layer is not None:
                    layers[section] = layer

        timeout = table.get("timeout", DEFAULT_INTEGRATION_TIMEOUT)
        provider_timeout = timeout
        if not _is_number_in(timeout, INTEGRATION_TIMEOUT_BOUNDS):
            # The integration reports the bad timeout. The stand-in lets providers be checked.
            provider_timeout = DEFAULT_INTEGRATION_TIMEOUT

        providers: list[Provider] = []
        complete = True
        raw_providers = table.get("providers", [])
        if isinstance(raw_providers, list):
            provider_names: set[str] = set()
            for provider_index, provider_table in enumerate(raw_providers):
                provider = self._build_provider(
                    path, provider_index, provider_table, provider_names, layers, provider_timeout
                )
                if provider is None:
                    complete = False
                else:
                    providers.append(provider)
        else:
            self._issue(
                f"{path}.providers",
                f"expected an array of tables ([[integrations.providers]]), got "
                f"{describe_value(raw_providers)} ({toml_type_name(raw_providers)})",
            )
            complete = False

        kwargs = {
            "name": table.get("name", MISSING),
            "tier": table.get("tier", MISSING),
            "timeout": timeout,
            "providers": tuple(providers),
        }
        return self._construct(
            Integration, path, kwargs, drop_path=None if complete else "providers"
        )

    # [[integrations.providers]]

    def _build_provider(
        self,
        integration_path: str,
        index: int,
        table: Any,
        names: set[str],
        integration_layers: Mapping[str, Layer],
        default_timeout: float,
    ) -> Provider | None:
        path = _element_path(f"{integration_path}.providers", index, table, names)
        if not self._expect_table(path, table):
            return None
        self._check_keys(path, table, schema.PROVIDER_KEYS)

        kwargs: dict[str, Any] = {
            key: value
            for key, value in table.items()
            if key in schema.PROVIDER_KEYS and key not in schema.SECTIONS
        }
        for required in ("name", "kind", "base_url"):
            kwargs.setdefault(required, MISSING)
        kwargs.setdefault("timeout", default_timeout)
        api_key = self._resolve_api_key(path, table.get("api_key_env"))
        if api_key is not None:
            kwargs["api_key"] = api_key

        sections_valid = True
        for section in schema.SECTIONS:
            layers = [integration_layers[section]] if section in integration_layers else []
            if section in table:
                own = self._read_section(section, f"{path}.{section}", table[section])
                if own is None:
                    sections_valid = False
                else:
                    layers.append(own)
            built = self._build_section(section, f"{path}.{section}", layers)
            if built is None:
                sections_valid = False
            else:
                kwargs[section] = built

        provider = self._construct(Provider, path, kwargs)
        return provider if sections_valid else None

    def _resolve_api_key(self, path: str, env_name: Any) -> SecretStr | None:
        if not isinstance(env_name, str) or ENV_VAR_PATTERN.fullmatch(env_name) is None:
            return None  # Provider reports an invalid name.
        value = self._environ.get(env_name)
        if not value:
            logger.info(
                "%s: environment variable %s is not set or empty, so requests to this "
                "provider carry no API key",
                path,
                env_name,
            )
            return None
        return SecretStr(value)

    # Policy sections

    def _read_section(self, section: str, path: str, table: Any) -> Layer | None:
        """Check one section table and flatten it into a `Layer`."""
        if not self._expect_table(path, table):
            return None
        cls = schema.SECTIONS[section]
        aliases = {alias: key for (owner, alias), key in schema.ALIASES.items() if owner == section}
        self._check_keys(path, table, schema.field_names(cls) | aliases.keys())

        values: dict[str, Any] = {}
        for key, value in table.items():
            nested_cls = schema.NESTED_TABLES.get((section, key))
            if key in aliases:
                canonical = aliases[key]
                if canonical in table:
                    self._issue(
                        f"{path}.{key}",
                        f"{key} is another name for {canonical}: set {canonical} or {key} "
                        f"in {path}, not both",
                    )
                    continue
                values[canonical] = value
            elif nested_cls is not None:
                nested_path = f"{path}.{key}"
                if self._expect_table(nested_path, value):
                    self._check_keys(nested_path, value, schema.field_names(nested_cls))
                    for nested_key, nested_value in value.items():
                        if nested_key in schema.field_names(nested_cls):
                            values[f"{key}.{nested_key}"] = nested_value
            elif key in schema.field_names(cls):
                values[key] = value

        self._check_modes(section, path, values)
        return Layer(path, values)

    def _check_modes(self, section: str, path: str, values: Mapping[str, Any]) -> None:
        for key in values:
            rule = schema.APPLIES_ONLY_WHEN.get((section, key))
            if rule is None:
                continue
            mode_key, mode_type, modes = rule
            mode = values.get(mode_key)
            # An invalid mode is reported by the dataclass, so only valid ones are compared.
            valid_modes = {member.value for member in mode_type}
            if isinstance(mode, str) and mode in valid_modes and mode not in modes:
                expected = " or ".join(repr(candidate) for candidate in sorted(modes))
                self._issue(
                    f"{path}.{key}",
                    f"{key} applies only when {mode_key} is {expected}, but {path}.{mode_key} "
                    f"is {mode!r}: remove {key} or change {mode_key}",
                )

    def _build_section(self, section: str, path: str, layers: list[Layer]) -> Any | None:
        """Merge the layers of one section and build its dataclass."""
        merged = merge_layers(layers, lambda key: schema.REPLACES.get((section, key), ()))
        kwargs = merged.top_level()
        nested_valid = True
        for (owner, key), nested_cls in schema.NESTED_TABLES.items():
            if owner != section:
                continue
            nested: Merged = merged.nested(key)
            built = self._construct(
                nested_cls, f"{path}.{key}", nested.values, origins=nested.origins
            )
            if built is None:
                nested_valid = False
            else:
                kwargs[key] = built

        section_object = self._construct(
            schema.SECTIONS[section], path, kwargs, origins=merged.origins
        )
        return section_object if nested_valid else None


def _is_number_in(value: Any, bounds: Bounds) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return bounds.contains(float(value))


def _element_path(array_path: str, index: int, table: Any, names: set[str]) -> str:
    """Return ``array.name`` for an element with a valid, new name, else ``array[index]``."""
    name = table.get("name") if isinstance(table, dict) else None
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name) and name not in names:
        names.add(name)
        return f"{array_path}.{name}"
    return f"{array_path}[{index}]"
