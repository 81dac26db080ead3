"""YAML in and out: one loader (duplicate keys are errors) and one dumper (stable, readable)."""

from __future__ import annotations

import functools
import math
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


_STR_TAG = "tag:yaml.org,2002:str"


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _STR_TAG and isinstance(key_node, yaml.ScalarNode):
                key = key_node.value  # a plain text key (nearly all of them): no constructor needed
            else:
                key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise DuplicateKey(
                    None, None,
                    f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


    def construct_document(self, node):  # noqa: ANN001
        # Plain documents (mappings, sequences and scalars of the core tags: every generated file)
        # are built directly from the composed nodes, about twice as fast as PyYAML's general
        # constructor, which verify spends most of its time in; anything else (merge keys, other
        # tags, unhashable keys) goes the general way, and so does a document with an error, so
        # that the error reported is the one the general way finds first.
        try:
            data = self._plain(node, {})
        except Exception:  # noqa: BLE001 - _NotPlain, or an error the general way reports
            self.constructed_objects, self.recursive_objects, self.state_generators = {}, {}, []
            return super().construct_document(node)
        self.constructed_objects, self.recursive_objects, self.deep_construct = {}, {}, False
        return data

    def _plain(self, node, built):  # noqa: ANN001
        if node in built:
            if built[node] is _NotPlain:
                raise _NotPlain  # an alias to a node being built (a recursive structure)
            return built[node]  # an alias: the same object, as PyYAML gives it
        kind = type(node)
        if kind is yaml.ScalarNode:
            value = node.value if node.tag == _STR_TAG else self.construct_object(node)
        elif kind is yaml.SequenceNode and node.tag == _SEQ_TAG:
            built[node] = _NotPlain
            value = [self._plain(item, built) for item in node.value]
        elif kind is yaml.MappingNode and node.tag == _MAP_TAG:
            built[node] = _NotPlain
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:  # every key first, as construct_mapping checks them
                if key_node.tag == _STR_TAG and type(key_node) is yaml.ScalarNode:
                    key = key_node.value
                elif key_node.tag in _NOT_KEYS:
                    raise _NotPlain  # `<<` merge keys, `=` value keys
                else:
                    key = self._plain(key_node, built)
                    try:
                        hash(key)
                    except TypeError:
                        raise _NotPlain from None
                if key in seen:
                    raise DuplicateKey(None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark
            value = {key: self._plain(value_node, built) for key, (_, value_node) in zip(seen, node.value)}
        else:
            raise _NotPlain
        built[node] = value
        return value


class _NotPlain(Exception):
    pass


_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_NOT_KEYS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def load(text: str | bytes) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Stable output: insertion order, no anchors, block style, unicode as is."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002
        return True


def _represent_float(dumper: yaml.SafeDumper, value: float) -> yaml.Node:
    # PyYAML's own float form, except that it never writes a YAML 1.1 string
    # (e.g. '1e-05' would read back as text): always a dot before the exponent.
    if math.isnan(value) or math.isinf(value):
        return yaml.SafeDumper.represent_float(dumper, value)
    text = repr(value).lower()
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line or otherwise special text in double quotes with escapes: one line, exact bytes.
    # (NEL, LINE and PARAGRAPH SEPARATOR too: YAML reads them raw as line breaks.)
    if any(c in value for c in "\n\r\t\x85\u2028\u2029") or (value and (value[0] == " " or value[-1] == " ")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(float, _represent_float)
_Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
    )


def dump_inline(value: Any) -> str:
    """One value as a single line of YAML flow syntax (`[a, b]`, `{k: v}`, `5.0e-05`, `"a\\nb"`)."""
    if value is None or isinstance(value, (str, int, float)):
        return _scalar(value)
    if isinstance(value, dict) and value and all(_simple_key(k) and _is_scalar(v) for k, v in value.items()):
        # A flow mapping of scalars (e.g. every eval cell's metadata): its items written as the
        # scalars they are, which is what the dumper writes (a whole dump per cell was 40 % of a plan).
        return "{" + ", ".join(f"{_scalar(k)}: {_scalar(v)}" for k, v in value.items()) + "}"
    return _dump_inline(value)


def _scalar(value: Any) -> str:
    if isinstance(value, float) and value == 0:
        return _dump_inline(value)  # 0.0 and -0.0 are one key to a cache
    return _dump_scalar(type(value), value)  # scalars repeat across runs: computed once each


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float))


def _simple_key(key: Any) -> bool:
    """A text key the dumper writes as is (`key: value`): one line, short (else it writes `? key`)."""
    return type(key) is str and 0 < len(key) < 100 and not any(c in key for c in "\n\r\x85\u2028\u2029")


@functools.lru_cache(maxsize=4096)
def _dump_scalar(kind: type, value: Any) -> str:  # noqa: ARG001 - `kind` keeps 1, 1.0 and True apart
    return _dump_inline(value)


def _dump_inline(value: Any) -> str:
    text = yaml.dump(
        [value], Dumper=_Dumper, default_flow_style=True, allow_unicode=True, width=1_000_000, sort_keys=False
    ).strip()
    return text[1:-1]
