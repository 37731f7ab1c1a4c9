"""Errors raised while loading and validating the TPIR configuration.

Hierarchy::

    ValueError
     └── ConfigError          raised for any invalid configuration: unreadable file,
                              invalid TOML, unknown key, wrong type, value out of range,
                              forbidden combination of keys

A `ConfigError` carries every problem found in one pass as `ConfigIssue` values, so a
user fixes a file in one round instead of one error per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigIssue", "join_path"]


def join_path(prefix: str, path: str) -> str:
    """Join two parts of a dotted field path, keeping ``[index]`` parts attached."""
    if not prefix:
        return path
    if not path:
        return prefix
    if path.startswith("["):
        return f"{prefix}{path}"
    return f"{prefix}.{path}"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration.

    ``path`` is the dotted path of the field, such as
    ``integrations.llm_provider.providers.anthropic.retry.max_delay``, or an empty string
    for a problem with the document as a whole. ``message`` names the bad value and the
    valid range. ``related`` lists the other fields that the problem involves, relative to
    the same object as ``path``: the loader uses them to point at the section that set
    each field.
    """

    path: str
    message: str
    related: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return f"{self.path}: {self.message}"

    def with_prefix(self, prefix: str) -> ConfigIssue:
        """Return the issue with ``prefix`` put in front of its path and related fields."""
        return ConfigIssue(
            path=join_path(prefix, self.path),
            message=self.message,
            related=tuple(join_path(prefix, field) for field in self.related),
        )


class ConfigError(ValueError):
    """Invalid configuration, with every problem found listed in `issues`.

    ``source`` names where the configuration came from (a file path, ``<string>`` or
    ``<embedded default>``), or is None for objects built directly in Python.
    """

    def __init__(self, issues: Iterable[ConfigIssue], source: str | None = None) -> None:
        unique = tuple(dict.fromkeys(issues))
        if not unique:
            raise ValueError("ConfigError needs at least one ConfigIssue")
        self.issues: tuple[ConfigIssue, ...] = unique
        self.source = source
        super().__init__(self._render())

    @classmethod
    def single(cls, path: str, message: str, source: str | None = None) -> ConfigError:
        """Build an error with one issue."""
        return cls([ConfigIssue(path, message)], source)

    def _render(self) -> str:
        where = f" in {self.source}" if self.source else ""
        if len(self.issues) == 1:
            return f"invalid configuration{where}: {self.issues[0]}"
        lines = [f"invalid configuration{where} ({len(self.issues)} errors):"]
        lines.extend(f"  {issue}" for issue in self.issues)
        return "\n".join(lines)
