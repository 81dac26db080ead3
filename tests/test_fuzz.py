"""Fuzzed designs (hypothesis). Valid ones render and verify; broken ones (wrong types, missing
fields, bad references, odd YAML, junk bytes) end in a DesignError whose every line names a field
path of the design or a line of the file: never another exception, and `cruijff-gen new` writes
nothing for them.

The CI profile (CI=true) runs 1,000 broken designs (0.03 s each) and 300 valid ones (each renders
and verifies a whole experiment, 0.1-0.3 s); locally 100 of each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import designs
from conftest import REPO
from cruijff_gen import cli, facts
from cruijff_gen.commands import front
from cruijff_gen.commands import render as render_command
from cruijff_gen.errors import DesignError
from cruijff_gen.experiment_dir import DEST_KEY, read_design_file
from cruijff_gen.parse import DESIGN_SECTIONS, parse
from cruijff_gen.plan import plan
from cruijff_gen.render import renderer
from cruijff_gen.verify import verify

CI = os.environ.get("CI") == "true"
_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
FUZZ = settings(max_examples=1000 if CI else 100, **_SETTINGS)
FUZZ_RENDER = settings(max_examples=300 if CI else 100, **_SETTINGS)

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(13, 32), 127, *range(128, 133), *range(134, 160), 0xFEFF]))),
    max_size=40,
)
NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._+=-]{0,20}", fullmatch=True).filter(lambda n: n not in ("logs", "eval"))
MODELS = ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct", "Llama-3.1-8B-Instruct", "Llama-3.3-70B-Instruct", "Qwen2.5-3B-Instruct"]
LR = st.one_of(
    st.floats(min_value=1e-7, max_value=1e-2, allow_nan=False),
    st.sampled_from(["1e-5", "5e-5", "2e-4", "3.0e-4", "0.001"]),
)


@st.composite
def valid_designs(draw) -> dict:
    d = designs.base()
    models = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True))
    d["models"]["base"] = [{"name": m, "path": f"/models/{m}"} for m in models]
    epochs = draw(st.integers(1, 3))
    prompt = draw(TEXT) + "{input}" + draw(TEXT)
    d["controls"].update(epochs=epochs, batch_size=draw(st.integers(1, 64)), system_prompt=draw(TEXT), prompt=prompt,
                         validation_during_training=draw(st.booleans()))
    names = draw(st.lists(NAME, min_size=1, max_size=6, unique_by=str.casefold))
    runs, matrix = [], []
    for name in names:
        kind = draw(st.sampled_from(["fine-tuned", "fine-tuned", "control", "eval-only"]))
        run = {"name": name, "type": kind, "model": draw(st.sampled_from(models)), "parameters": {}}
        if kind == "fine-tuned":
            run["parameters"] = {"lora_rank": draw(st.integers(1, 256)), "lr": draw(LR)}
            if draw(st.booleans()):
                run["compute"] = {"gpus": draw(st.integers(1, 8)), "time": draw(st.sampled_from(["01:00:00", "2-00:00:00", 90]))}
            epochs_to_eval = draw(st.one_of(st.none(), st.lists(st.integers(0, epochs - 1), min_size=1, max_size=epochs, unique=True)))
        else:
            epochs_to_eval = None
            if kind == "eval-only":
                run["parameters"] = {"checkpoint_path": f"/ckpt/{name}/epoch_0"}
        runs.append(run)
        if draw(st.booleans()):
            matrix.append({"run": name, "tasks": ["capitalization"], "epochs": epochs_to_eval})
    d["runs"] = runs
    d["evaluation"]["matrix"] = matrix
    d["evaluation"]["tasks"][0]["prompt"] = draw(st.one_of(st.none(), TEXT.map(lambda t: t + "{input}")))
    if d["evaluation"]["tasks"][0]["prompt"] is None:
        del d["evaluation"]["tasks"][0]["prompt"]
    return d


@FUZZ_RENDER
@given(valid_designs())
def test_valid_designs_render_and_verify(design):
    answers = yaml.safe_load(yaml.safe_dump(design, allow_unicode=True))  # as Copier keeps them
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp)
        (dest / ".copier-answers.yml").write_text(yaml.safe_dump(answers, allow_unicode=True), encoding="utf-8")
        try:
            assert render_command.run(dest, "render") == 0
        except DesignError as exc:
            # the only designs the strategy can draw that are refused: models that cannot do what
            # was drawn for them; everything else must render
            assert all("system turn" in line or "ties its output" in line for line in exc.lines()), exc.lines()
            return
        assert verify(dest, plan(parse(answers)), rendered=renderer(answers)) == []


# --------------------------------------------------------------------------- broken designs
JUNK_VALUES = st.one_of(
    st.text(max_size=10), st.integers(min_value=-(10**30), max_value=10**30), st.floats(), st.none(), st.booleans(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    yield path


@st.composite
def broken_design_texts(draw) -> bytes:
    kind = draw(st.sampled_from(["replace", "delete", "yaml", "bytes"]))
    d = designs.rich()
    if kind in ("replace", "delete"):
        paths = [p for p in _leaves(d) if p]
        path = draw(st.sampled_from(paths))
        node = d
        for part in path[:-1]:
            node = node[part]
        if kind == "replace":
            node[path[-1]] = draw(JUNK_VALUES)
        else:
            del node[path[-1]]
        return yaml.safe_dump(d, allow_unicode=True).encode()
    if kind == "yaml":
        text = yaml.safe_dump(d, allow_unicode=True)
        trick = draw(st.sampled_from(["dup", "tab", "inf", "null", "empty", "anchor", "list", "scalar", "truncate", "flow"]))
        if trick == "dup":
            text = text.replace("controls:\n", "controls:\n  epochs: 1\n  epochs: 2\n", 1)
        elif trick == "tab":
            text = text.replace("\n  ", "\n\t", 1)
        elif trick == "inf":
            text = text.replace("batch_size: 4", "batch_size: .inf", 1)
        elif trick == "null":
            section = draw(st.sampled_from(list(DESIGN_SECTIONS)))
            text = f"{section}: null\n" + "\n".join(line for line in text.splitlines() if not line.startswith(f"{section}:"))
        elif trick == "empty":
            text = draw(st.sampled_from(["", "   \n", "---\n", "# only a comment\n"]))
        elif trick == "anchor":
            text = text.replace("controls:\n", "controls: &c\n", 1) + "evaluation: *c\n"
        elif trick == "list":
            text = "- " + text.replace("\n", "\n  ")
        elif trick == "scalar":
            text = draw(st.sampled_from(["42", "true", "just words", "1e-5"]))
        elif trick == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        else:
            text = "{" + text
        return text.encode()
    return draw(st.binary(min_size=1, max_size=200))


_FILE_LEVEL = re.compile(
    r"experiment_summary\.yaml: (line (?P<line>\d+), column \d+: not valid YAML \(.+\)"
    r"|not valid YAML \(.+\)|the file is empty|expected a mapping of sections, got \w+)"
)
_FIELD = re.compile(r"(?P<path>[A-Za-z_]\w*(?:\[\d+\]|\.[^\s.\[\]:]+)*): \S")
_SEGMENT = re.compile(r"\[(\d+)\]|\.?([^\s.\[\]]+)")
_MISSING = object()


def located(line: str, text: bytes, design: object) -> bool:
    """Whether a message line names where the problem is: a line of the file (within the file), or
    a field path of the design as loaded: a section of the design at its root, every list index
    within its list (a single value counts as a list of one), every step into a mapping (a missing field's parent may be missing too)."""
    if m := _FILE_LEVEL.fullmatch(line):
        return m["line"] is None or int(m["line"]) <= len(text.splitlines()) + 1  # (+1: the end of the file)
    m = _FIELD.match(line)
    if not m or not isinstance(design, dict):
        return False
    segments = [(int(i) if i else None, name) for i, name in _SEGMENT.findall(m["path"])]
    if segments[0][1] not in DESIGN_SECTIONS:
        return False
    node = design
    for index, name in segments:
        if index is not None:
            if isinstance(node, list) and index < len(node):
                node = node[index]
            elif index == 0 and node is not _MISSING and not isinstance(node, (list, dict)):
                node = _MISSING  # one value where a list is expected is a list of one (`epochs: 0`)
            else:
                return False
        elif isinstance(node, dict):
            node = node.get(name, _MISSING)
        elif node is None:
            node = _MISSING  # `parameters: null` is not given
        elif node is not _MISSING:
            return False  # a field inside a scalar
    return True


@FUZZ
@given(broken_design_texts())
def test_broken_designs_fail_with_a_located_message(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        summary = root / "experiment_summary.yaml"
        summary.write_bytes(data)
        dest = root / "experiments" / "exp"
        try:
            # as `cruijff-gen new` checks it: with the destination, experiment.dir's default
            front.check(summary, {DEST_KEY: str(dest)})
        except DesignError as exc:
            lines = exc.lines()
        else:
            return  # the change drawn left a valid design (e.g. other text in a description)
        try:
            loaded = read_design_file(summary)
        except DesignError:
            loaded = None
        assert lines and all(line.strip() for line in lines)
        for line in lines:
            assert located(line, data, loaded), line
        # `cruijff-gen new` refuses it the same way before writing anything anywhere
        dest.parent.mkdir()
        before = sorted(root.rglob("*"))
        with pytest.raises(DesignError) as refused:
            front.new(summary, dest, template=str(REPO))
        assert refused.value.lines() == lines
        assert sorted(root.rglob("*")) == before  # nothing written


def test_located_accepts_only_paths_into_the_design():
    design = {"runs": [{"name": "a", "parameters": {}}], "controls": {"epochs": 1}}
    text = b"a: 1\nb: 2\n"
    assert located("runs[0].parameters.lr: expected a number, got 'x'", text, design)
    assert located("runs[0].compute.mem: expected a SLURM memory size", text, design)  # inside a missing field
    assert located("evaluation: required field is missing", text, design)  # a missing section
    assert located("experiment_summary.yaml: line 3, column 1: not valid YAML (x)", text, None)
    assert not located("experiment_summary.yaml: line 9, column 1: not valid YAML (x)", text, None)  # past the end
    assert not located("runs[1].name: duplicate run name", text, design)  # no runs[1]
    assert located("controls.epochs[0]: expected a whole number", text, design)  # `epochs: 1` read as [1]
    assert not located("controls.epochs[1]: expected a whole number", text, design)
    assert not located("controls.epochs.x: expected", text, design)  # into a number
    assert not located("Error: something went wrong", text, design)  # a word with a colon is not a path
    assert not located("ValueError: bad", text, design)
    assert not located("expected a number, got 'x'", text, design)


@pytest.mark.parametrize(
    "text,expected",
    [
        (b"experiment: [\n  bad", "line 3, column 1: not valid YAML"),
        (b"\xa3\x00\xff junk", "not valid YAML (unacceptable character"),
        (b"experiment: {}\nexperiment: {}\n", "duplicate key 'experiment' (first at line 1)"),
        (b"- 1\n- 2\n", "expected a mapping of sections, got list"),
        (b"", "the file is empty"),
    ],
    ids=["syntax", "binary", "duplicate-key", "list", "empty"],
)
def test_cli_new_refuses_bad_yaml_without_writing(tmp_path, capsys, text, expected):
    """In-process through the CLI's entry point (one case below runs the installed command)."""
    summary = tmp_path / "summary.yaml"
    summary.write_bytes(text)
    dest = tmp_path / "exp"
    assert cli.main(["new", str(summary), str(dest)]) != 0
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and err.startswith("cruijff-gen: error: ")
    assert sorted(tmp_path.iterdir()) == [summary]


def test_cli_new_command_refuses_bad_yaml_without_writing(tmp_path):
    summary = tmp_path / "summary.yaml"
    summary.write_bytes(b"experiment: {}\nexperiment: {}\n")
    dest = tmp_path / "exp"
    result = subprocess.run([sys.executable, "-m", "cruijff_gen", "new", str(summary), str(dest)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "duplicate key 'experiment' (first at line 1)" in result.stderr and "Traceback" not in result.stderr
    assert sorted(tmp_path.iterdir()) == [summary]


def test_catalog_models_cover_the_fuzzed_ones():
    names = facts.catalog().names()
    assert all(m in names for m in MODELS)
