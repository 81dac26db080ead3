"""The product's facts, loaded once: defaults (data/defaults.yaml) and the model catalog
(data/catalog.yaml, with a user catalog merged over it)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from .errors import CatalogError

DATA_DIR = Path(__file__).parent / "data"

SUPPORTED_TOOLS = {"preparation": ("torchtune",), "evaluation": ("inspect-ai",)}
DEFAULT_TOOLS = {"preparation": "torchtune", "evaluation": "inspect-ai"}


@lru_cache(maxsize=None)
def defaults() -> dict[str, Any]:
    from . import yamlio  # (imported where used: Copier's throw-away renders load this module, and need no YAML)

    return yamlio.load((DATA_DIR / "defaults.yaml").read_text(encoding="utf-8"))


def hyperparameters() -> dict[str, dict[str, Any]]:
    return defaults()["hyperparameters"]


@dataclass(frozen=True)
class ModelEntry:
    """One catalog entry, as plain data (see the header of data/catalog.yaml)."""

    name: str
    short_name: str
    model: dict[str, Any]
    lora: dict[str, Any]
    tokenizer: dict[str, Any]
    checkpointer: dict[str, Any]
    resources: dict[str, Any]
    eval_resources: dict[str, Any]
    mig: dict[str, Any] | None
    tied_embeddings: bool = False
    system_role: bool = True
    size_gb: float | None = None


_REQUIRED_ENTRY_KEYS = ("model", "tokenizer", "checkpointer", "resources")
_MAPPING_ENTRY_KEYS = (*_REQUIRED_ENTRY_KEYS, "lora", "eval_resources")  # each a mapping when given


class Catalog:
    def __init__(self, entries: dict[str, ModelEntry], aliases: dict[str, str]):
        self._entries = entries
        self._aliases = aliases

    def __eq__(self, other: object) -> bool:  # by value: a plan kept between commands is a copy (plancache)
        return isinstance(other, Catalog) and (self._entries, self._aliases) == (other._entries, other._aliases)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._entries)))

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._aliases))

    def get(self, name: str) -> ModelEntry | None:
        return self._entries.get(self._aliases.get(name, name))


def flat_items(value: Any, prefix: str = "", normalize: Any = None) -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) pairs of a nested mapping, in order; an empty mapping below the top is a
    leaf. `normalize(key, value)`, when given, rewrites each node first (its key: the path's last part)."""
    if normalize is not None:
        value = normalize(prefix.rsplit(".", 1)[-1], value)
    if isinstance(value, dict) and (value or not prefix):
        for key, inner in value.items():
            yield from flat_items(inner, f"{prefix}.{key}" if prefix else str(key), normalize)
    else:
        yield prefix, value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_catalog_file(path: Path) -> dict[str, Any]:
    from . import yamlio

    try:
        raw = yamlio.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"model catalog {path}: cannot read: {exc.strerror}") from exc
    except Exception as exc:  # noqa: BLE001 - any YAML error becomes one line
        raise CatalogError(f"model catalog {path}: not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogError(f"model catalog {path}: expected a mapping of model name to entry")
    return raw


def _size(source: str, name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise CatalogError(f"model catalog {source}: {name}: size_gb: expected a positive number, got {value!r}")
    return float(value)


@lru_cache(maxsize=16)
def catalog(user_catalog: str = "") -> Catalog:
    """The bundled catalog with the user's catalog file (if any) merged over it, entry by entry."""
    raw = _read_catalog_file(DATA_DIR / "catalog.yaml")
    if user_catalog:
        for name, entry in _read_catalog_file(Path(user_catalog)).items():
            if not isinstance(entry, dict):
                raise CatalogError(f"model catalog {user_catalog}: {name}: expected a mapping")
            base_name = entry.get("like")  # a new model may start from a bundled one
            base = raw.get(base_name, {}) if base_name else raw.get(name, {})
            raw[name] = _merge(base, {k: v for k, v in entry.items() if k != "like"})
            if base_name and "aliases" not in entry:
                raw[name].pop("aliases", None)
    entries: dict[str, ModelEntry] = {}
    aliases: dict[str, str] = {}
    source = user_catalog or str(DATA_DIR / "catalog.yaml")
    for name, entry in raw.items():
        missing = [k for k in _REQUIRED_ENTRY_KEYS if k not in entry]
        if missing:
            raise CatalogError(f"model catalog {source}: {name}: missing {', '.join(missing)}")
        for key in (*_MAPPING_ENTRY_KEYS, "mig"):
            if key in entry and not isinstance(entry[key], dict) and not (key == "mig" and not entry[key]):
                raise CatalogError(f"model catalog {source}: {name}.{key}: expected a mapping, got {entry[key]!r}")
        if not isinstance(entry.get("aliases") or [], list):
            raise CatalogError(f"model catalog {source}: {name}.aliases: expected a list of names, got {entry['aliases']!r}")
        entries[name] = ModelEntry(
            name=name,
            short_name=str(entry.get("short_name", name)),
            model=dict(entry["model"]),
            lora=dict(entry.get("lora", {})),
            tokenizer=dict(entry["tokenizer"]),
            checkpointer=dict(entry["checkpointer"]),
            resources=dict(entry["resources"]),
            eval_resources=dict(entry.get("eval_resources", {})),
            mig=dict(entry["mig"]) if entry.get("mig") else None,
            tied_embeddings=bool(entry.get("tied_embeddings", False)),
            system_role=bool(entry.get("system_role", True)),
            size_gb=_size(source, name, entry.get("size_gb")),
        )
        for alias in entry.get("aliases", []) or []:
            aliases[str(alias)] = name
    return Catalog(entries, aliases)
