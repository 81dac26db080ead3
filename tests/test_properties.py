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
    assert cfg["dataset"]["new_system_prompt"] == system
    assert cfg["tokenizer"]["prompt_template"]["user"] == design["controls"]["prompt"].split("{input}", 1)
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

    from cruijff_gen.verify import _split

    try:
        expected = shlex.split(line)
    except ValueError:  # unbalanced quotes: shlex's own error, raised by both
        try:
            _split(line)
        except ValueError:
            return
        raise AssertionError(f"{line!r}: shlex refuses it, the fast path did not")
    assert _split(line) == expected
