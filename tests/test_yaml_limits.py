"""yamlio's limits when the limits pass over the nodes is skipped for documents with neither an
alias nor a long text (issue 18): every hostile document is still refused, with the message the
limits pass gives, and a long text is accepted where the caller allows it."""

from __future__ import annotations

import pytest
import yaml

from cruijff_gen import yamlio

BIG = "x" * (yamlio.MAX_TEXT + 1)
BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(5))


@pytest.mark.parametrize(
    "text",
    [BOMB, f"k: {BIG}\n", f"? {BIG}\n: 1\n", f"k: [{BIG}]\n", "k: &a [1, *a]\n", f"k: !!str {BIG}\n",
     f"<<: {{m: {BIG}}}\n", f"? [{BIG}]\n: 1\n", "m: &m {x: 1}\nn: {<<: *m, y: *m}\n" + BOMB],
    ids=["alias-bomb", "long-value", "long-key", "long-item", "recursive", "long-tagged", "long-merge", "long-complex-key", "bomb-beside-merge"],
)
def test_hostile_documents_are_refused_as_the_limits_pass_refuses_them(text):
    loader = yamlio._Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    with pytest.raises(yamlio.LimitExceeded) as expected:
        yamlio._check_limits(node)
    with pytest.raises(yamlio.LimitExceeded) as found:
        yamlio.load(text)
    assert str(found.value) == str(expected.value)


def test_a_long_text_is_accepted_where_the_caller_allows_it():
    assert yamlio.load(f"record: {BIG}\n", long_texts=("record",)) == {"record": BIG}
    with pytest.raises(yamlio.LimitExceeded):
        yamlio.load(f"record: {BIG}\nother: {BIG}\n", long_texts=("record",))


def test_a_few_aliases_load_as_pyyaml_loads_them():
    text = "a: &a {x: 1}\nb: *a\nc: [*a, *a]\n"
    assert yamlio.load(text) == yaml.safe_load(text)
