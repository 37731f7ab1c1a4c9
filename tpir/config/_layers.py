"""Key-by-key merging of policy sections, and error paths that point at the right level.

A provider's policy section is built from up to two tables: the integration's (for
example ``integrations.llm_provider.retry``) and the provider's own (for example
``integrations.llm_provider.providers.openai.retry``). Keys of the provider's table win,
and keys that neither sets keep the dataclass defaults. The merge remembers where each
key was set, so an error about a value inherited from the integration names the
integration's table, where the user has to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tpir.config.errors import ConfigIssue, join_path

__all__ = ["Layer", "Merged", "merge_layers", "relocate"]


@dataclass(frozen=True)
class Layer:
    """One section table as written at one level of the file.

    ``path`` is the table's field path. ``values`` maps each key to its value, with
    keys of nested tables written as ``table.key`` (``probe_backoff.max_delay``).
    """

    path: str
    values: Mapping[str, Any]


@dataclass
class Merged:
    """Merged values of a section, with the full field path where each key was set."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def nested(self, prefix: str) -> Merged:
        """Return the keys under ``prefix.`` with that prefix removed."""
        start = f"{prefix}."
        return Merged(
            values={k[len(start) :]: v for k, v in self.values.items() if k.startswith(start)},
            origins={k[len(start) :]: v for k, v in self.origins.items() if k.startswith(start)},
        )

    def top_level(self) -> dict[str, Any]:
        """Return the keys that are not inside a nested table."""
        return {key: value for key, value in self.values.items() if "." not in key}


def merge_layers(layers: Iterable[Layer], replaced_keys: Callable[[str], Iterable[str]]) -> Merged:
    """Merge layers from the least to the most specific.

    ``replaced_keys(key)`` names keys that a layer setting ``key`` removes from the
    layers below it, for keys that are two ways of stating one choice.
    """
    merged = Merged()
    for layer in layers:
        for key in layer.values:
            for replaced in replaced_keys(key):
                if replaced not in layer.values:
                    merged.values.pop(replaced, None)
                    merged.origins.pop(replaced, None)
        for key, value in layer.values.items():
            merged.values[key] = value
            merged.origins[key] = join_path(layer.path, key)
    return merged


def _locate(field_path: str, origins: Mapping[str, str]) -> str | None:
    """Return the full path of a field (or of an item such as ``retryable[2]``) if set."""
    for key in sorted(origins, key=len, reverse=True):
        if field_path == key or field_path.startswith((f"{key}.", f"{key}[")):
            return origins[key] + field_path[len(key) :]
    return None


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def relocate(issue: ConfigIssue, section_path: str, origins: Mapping[str, str]) -> ConfigIssue:
    """Turn an issue with paths relative to a section into one with full paths.

    The issue is reported at the first of its fields that a table in the file set.
    Other involved fields that come from another table or from the built-in defaults
    are named in a note after the message.
    """
    fields = [issue.path, *issue.related]
    located = {name: _locate(name, origins) for name in fields}
    primary = next((name for name in fields if located[name] is not None), issue.path)
    path = located[primary] or join_path(section_path, primary)

    notes = []
    related = []
    for name in fields:
        if name == primary:
            continue
        where = located[name]
        related.append(where or join_path(section_path, name))
        if where is None:
            notes.append(f"{name} is the built-in default")
        elif _parent(where) != _parent(path):
            notes.append(f"{name} is set at {where}")

    message = issue.message
    if notes:
        message = f"{message} ({', '.join(notes)})"
    return ConfigIssue(path, message, tuple(related))
