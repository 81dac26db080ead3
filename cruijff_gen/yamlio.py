"""YAML in and out: one loader (duplicate keys are errors; bounded in size) and one dumper (stable, readable)."""

from __future__ import annotations

import functools
import math
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# Limits on what a design file may hold, checked on the composed node graph before anything is
# built from it (so a hostile file costs milliseconds, not minutes or gigabytes).
MAX_BYTES = 20_000_000  # the whole file (a 1,000-run design is ~0.3 MB)
MAX_TEXT = 100_000  # one text value (a prompt, a path, ...), in characters
MAX_VALUES = 100_000  # values after aliases are expanded (a file without aliases: any number) ...
MAX_ALIAS_GROWTH = 10  # ... and at most this many times the values the file itself writes


class LimitExceeded(yaml.YAMLError):
    """The text is valid YAML but too large (or an alias bomb): `where` is the field path, `line` 1-based."""

    def __init__(self, where: str, line: int, message: str):
        self.where, self.line, self.message = where, line, message
        super().__init__(f"line {line}: {where + ': ' if where else ''}{message}")


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *anchor`: merged by the base class as PyYAML (and so Copier) merges; keys given beside it win
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

    long_texts: tuple[str, ...] = ()  # top-level keys whose text may be longer than MAX_TEXT

    def construct_document(self, node):
        # Alias bombs and oversized texts end at _check_limits, before anything is expanded. Plain
        # documents (mappings, sequences and scalars of the core tags: every generated file) are
        # built directly from the composed nodes, about twice as fast as PyYAML's general
        # constructor, which verify spends most of its time in; that build shares aliased nodes
        # (it never expands them) and notes whether the document has an alias or a long text: a
        # document with neither is within the limits, and the limits pass over its nodes is
        # skipped (a third of the time of a generated file). Anything else (merge keys, other tags,
        # unhashable keys) goes the general way, after the limits, and so does a document with an
        # error, so that the error reported is the one the general way finds first.
        self._unusual = False
        try:
            data = self._plain(node, {})
        except Exception:  # noqa: BLE001 - _NotPlain, or an error the general way reports
            _check_limits(node, self.long_texts)
            self.constructed_objects, self.recursive_objects, self.state_generators = {}, {}, []
            return super().construct_document(node)
        if self._unusual:
            _check_limits(node, self.long_texts)
        self.constructed_objects, self.recursive_objects, self.deep_construct = {}, {}, False
        return data

    def _plain(self, node, built):
        if node in built:
            self._unusual = True  # an alias
            if built[node] is _NotPlain:
                raise _NotPlain  # an alias to a node being built (a recursive structure)
            return built[node]  # an alias: the same object, as PyYAML gives it
        kind = type(node)
        if kind is yaml.ScalarNode:
            if len(node.value) > MAX_TEXT:
                self._unusual = True
            value = node.value if node.tag == _STR_TAG else self.construct_object(node)
        elif kind is yaml.SequenceNode and node.tag == _SEQ_TAG:
            built[node] = _NotPlain
            value = [self._plain(item, built) for item in node.value]
        elif kind is yaml.MappingNode and node.tag == _MAP_TAG:
            built[node] = _NotPlain
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:  # every key first, as construct_mapping checks them
                if key_node.tag == _STR_TAG and type(key_node) is yaml.ScalarNode:
                    key = key_node.value  # an alias here adds one value to a pair written in the file: no bomb
                    if len(key) > MAX_TEXT:
                        self._unusual = True
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


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def _check_limits(root: yaml.Node, long_texts: tuple[str, ...] = ()) -> None:
    """Refuse texts too long and alias bombs (`&a [*b, *b, ...]` nested: 3 KB that expand to
    billions of values), naming the field and line. One pass over the node graph, each node once."""
    size: dict[int, int] = {}
    own = 0
    stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
    active: set[int] = set()
    while stack:
        node, where, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else [v for pair in node.value for v in pair]
            size[key] = 1 + sum(size[id(c)] for c in children)
            continue
        if key in size:
            continue  # an alias of a node already measured
        if key in active:
            raise LimitExceeded(where, node.start_mark.line + 1, "a recursive alias (a value that contains itself)")
        own += 1
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_TEXT and where not in long_texts:
                raise LimitExceeded(where, node.start_mark.line + 1, f"a text of {len(node.value):,} characters; at most {MAX_TEXT:,} are accepted")
            size[key] = 1
            continue
        active.add(key)
        stack.append((node, where, True))
        if isinstance(node, yaml.SequenceNode):
            stack += [(c, f"{where}[{i}]", False) for i, c in reversed(list(enumerate(node.value)))]
        else:
            for k, v in reversed(node.value):
                path = f"{where}.{_key_text(k)}" if where else _key_text(k)
                stack += [(v, path, False), (k, path, False)]
    total = size[id(root)]
    if total > max(MAX_VALUES, MAX_ALIAS_GROWTH * own):
        where, node = "", root
        while isinstance(node, yaml.MappingNode) and node.value:  # down to the field that grows
            k, v = max(node.value, key=lambda pair: size[id(pair[1])])
            if size[id(v)] * 2 < size[id(node)]:
                break
            where, node = (f"{where}.{_key_text(k)}" if where else _key_text(k)), v
        raise LimitExceeded(where, node.start_mark.line + 1,
                            f"YAML aliases expand {own:,} values to {total:,} (an alias bomb?); at most {MAX_ALIAS_GROWTH}x and {MAX_VALUES:,} are accepted")


def load(text: str | bytes, long_texts: tuple[str, ...] = ()) -> Any:
    """`long_texts`: top-level keys whose text is exempt from MAX_TEXT (the answers file's design
    record, checked value by value once decoded: experiment_dir.answers_from_text)."""
    if len(text) > MAX_BYTES:
        raise LimitExceeded("", 1, f"the file holds {len(text):,} bytes; at most {MAX_BYTES:,} are accepted")
    return yaml.load(text, Loader=_loader(tuple(long_texts)))  # noqa: S506 - a safe loader


@functools.lru_cache(maxsize=8)
def _loader(long_texts: tuple[str, ...]) -> type:
    return type("_LongTextLoader", (_Loader,), {"long_texts": long_texts}) if long_texts else _Loader


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Stable output: insertion order, no anchors, block style, unicode as is."""

    def ignore_aliases(self, data: Any) -> bool:
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
def _dump_scalar(kind: type, value: Any) -> str:  # `kind` keeps 1, 1.0 and True apart
    return _dump_inline(value)


def _dump_inline(value: Any) -> str:
    text = yaml.dump(
        [value], Dumper=_Dumper, default_flow_style=True, allow_unicode=True, width=1_000_000, sort_keys=False
    ).strip()
    return text[1:-1]
