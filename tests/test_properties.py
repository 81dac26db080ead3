"""Property tests: any text a researcher writes as a prompt reaches every generated file byte-exact,
and numbers written the YAML 1.1 way (`5e-4`) arrive as numbers."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import designs
from cruijff_gen import yamlio
from cruijff_gen.parse import parse
from cruijff_gen.plan import plan
from cruijff_gen.render import render

# Any unicode text YAML can carry (no surrogates, no C0/C1 controls other than \t \n).
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(13, 32), 127, *range(128, 160), 0xFEFF]))),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(before=TEXT, after=TEXT, system=TEXT)
def test_prompts_arrive_byte_exact(before, after, system):
    design = designs.base()
    design["controls"]["prompt"] = before + "{input}" + after
    design["controls"]["system_prompt"] = system
    answers = yaml.safe_load(yaml.safe_dump(design, allow_unicode=True))  # as Copier stores them
    the_plan = plan(parse(answers))
    files = render(the_plan, answers)
    cfg = yamlio.load(files["r8/finetune.yaml"])
    assert cfg["dataset"]["system_prompt"] == system
    assert cfg["dataset"]["prompt"] == design["controls"]["prompt"]
    cell = yamlio.load(files["base/eval/capitalization.yaml"])
    assert cell["prompt"] == design["controls"]["prompt"] and cell["system_prompt"] == system
    assert yamlio.load(files["experiment_summary.yaml"])["controls"]["prompt"] == design["controls"]["prompt"]


@settings(max_examples=200, deadline=None)
@given(lr=st.floats(min_value=1e-12, max_value=10, allow_nan=False, allow_infinity=False), style=st.sampled_from(["e", "g", "repr"]))
def test_learning_rates_arrive_as_floats(lr, style):
    text = {"e": f"{lr:e}", "g": f"{lr:g}", "repr": repr(lr)}[style]
    design = designs.base()
    design["runs"][0]["parameters"]["lr"] = yaml.safe_load(f"lr: {text}")["lr"]  # str or float, as YAML 1.1 reads it
    the_plan = plan(parse(design))
    cfg = yamlio.load(render(the_plan, design)["r8/finetune.yaml"])
    assert isinstance(cfg["optimizer"]["lr"], float)
    assert cfg["optimizer"]["lr"] == float(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\r\nab;|&#$()`~*?=-/\xa0\u2003\u2028\x85é{}%") + ["'", '"', "\\"]), max_size=40))
def test_command_lines_split_like_shlex(line):
    """The verifier's fast path for command lines with nothing to unquote splits exactly as
    shlex.split (whose separators are only space, tab, CR and LF, not every Unicode space)."""
    import shlex

    from cruijff_gen.shell import split_words

    try:
        expected = shlex.split(line)
    except ValueError:  # unbalanced quotes: shlex's own error, raised by both
        try:
            split_words(line)
        except ValueError:
            return
        raise AssertionError(f"{line!r}: shlex refuses it, the fast path did not") from None
    assert split_words(line) == expected


@st.composite
def edits_apart(draw):
    """A generated file (base), the new design's version (one block of lines changed) and the
    user's version (another block changed, at least one untouched line away from the first)."""
    lines = [f"key_{i}: {draw(st.integers(0, 9))}" for i in range(draw(st.integers(6, 30)))]
    n = len(lines)
    a_start = draw(st.integers(0, n - 4))
    a_end = draw(st.integers(a_start + 1, min(n - 3, a_start + 3)))
    b_start = draw(st.integers(a_end + 1, n - 1))
    b_end = draw(st.integers(b_start + 1, n))
    block = st.lists(TEXT.map(lambda t: "# " + " ".join(t.split())), min_size=1, max_size=3)
    theirs = lines[:a_start] + draw(block) + lines[a_end:]
    ours = lines[:b_start] + draw(block) + lines[b_end:]
    if draw(st.booleans()):  # the user's edit first or second in the file
        theirs, ours = ours, theirs
    return "\n".join(lines) + "\n", "\n".join(theirs) + "\n", "\n".join(ours) + "\n"


@settings(max_examples=150, deadline=None)
@given(edits_apart())
def test_update_merge_keeps_a_hand_edit_apart_from_the_design_change(case):
    """The update's merge (real `git merge-file`): an untouched file becomes the new rendering; a
    hand edit that does not overlap the design change is kept beside it; base == new touches
    nothing."""
    import tempfile
    from pathlib import Path

    from cruijff_gen.tree_merge import merge

    base, new, ours = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in (("untouched.yaml", base), ("edited.yaml", ours), ("same.yaml", ours)):
            (root / name).write_text(text, encoding="utf-8")
        result = merge(root, {"untouched.yaml": base, "edited.yaml": base, "same.yaml": base},
                       {"untouched.yaml": new, "edited.yaml": new, "same.yaml": base}, set())
        assert (root / "untouched.yaml").read_text(encoding="utf-8") == new
        assert (root / "same.yaml").read_text(encoding="utf-8") == ours
        assert not result.conflicts, (base, new, ours)
        merged = (root / "edited.yaml").read_text(encoding="utf-8").splitlines()
        # every line either side changed is there: the user's and the design's
        for line in set(ours.splitlines()) - set(base.splitlines()):
            assert line in merged
        for line in set(new.splitlines()) - set(base.splitlines()):
            assert line in merged
        assert sorted(result.touched) == ["edited.yaml", "untouched.yaml"]
