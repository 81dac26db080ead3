"""The shortcuts that make a command cost in proportion to its change (issue 18) give exactly what the
long way gives: the plan kept between commands (plancache), eval metadata written without a whole
YAML dump, and plain YAML documents built without PyYAML's general constructor. All in-process;
the end-to-end behaviour (update, hooks, verify) is in test_update.py, test_precommit.py,
test_verify.py, and the timings in benchmarks/run.py."""

from __future__ import annotations

import datetime as dt
import pickle
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import designs
from cruijff_gen import experiment_dir, plancache, yamlio
from cruijff_gen.errors import DesignError
from cruijff_gen.parse import parse
from cruijff_gen.plan import plan

KEY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), KEY_TEXT)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEY_TEXT, SCALAR, min_size=1, max_size=6))
def test_flow_mapping_of_scalars_is_what_the_dumper_writes(mapping):
    assert yamlio.dump_inline(mapping) == yamlio._dump_inline(mapping)


class _General(yamlio._Loader):
    """cruijff_gen's loader with PyYAML's general constructor (what yamlio.load did before)."""

    def construct_document(self, node):
        return yaml.constructor.BaseConstructor.construct_document(self, node)


def _outcome(load, text):
    try:
        return "ok", load(text)
    except Exception as exc:  # noqa: BLE001 - compared, error for error
        return "error", type(exc).__name__, str(exc)


# Pieces of YAML that take both ways, and the general way's special cases: merge keys, aliases,
# other tags, non-text and unhashable keys, duplicates at several depths, an unsafe tag.
PIECES = ["a: 1\n", "b: [1, 2]\n", "c: {x: y}\n", "? [1]\n: 2\n", "<<: {m: 1}\n", "d: &x {k: v}\n", "e: *x\n",
          "f: !!set {a, b}\n", "g: 2025-01-01\n", "h: !!binary aGk=\n", "i: 1e-5\n", "j: 0x1f\n", "k: ~\n", "l: !!str 5\n",
          "m: !foo bar\n", "n: [&y [1], *y]\n", "1: int key\n", "null: x\n", "o: !!omap [{a: 1}]\n", "p: {a: 1, a: 2}\n",
          "=: v\n", "r:\n  - s: 1\n    s: 2\n", "t: !!python/object:os.system x\n", "u: yes\n", "v: .inf\n",
          "w: {? [a]: 1}\n", "x: {1.0: a, 1: b}\n", "y: 'it''s'\n", "z: \"caf\\u00e9\"\n"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=6))
def test_plain_documents_load_as_the_general_constructor_loads_them(pieces):
    text = "".join(pieces)
    assert _outcome(yamlio.load, text) == _outcome(lambda t: yaml.load(t, Loader=_General), text)  # noqa: S506 - the reference: PyYAML's general way, safe tags only


def test_generated_files_load_as_the_general_constructor_loads_them():
    from cruijff_gen.render import render

    answers = designs.rich()
    files = render(plan(parse(answers)), answers)
    texts = [t for p, t in files.items() if p.endswith((".yaml", ".yml"))]
    assert len(texts) > 5
    for text in texts:
        assert yamlio.load(text) == yaml.load(text, Loader=_General)  # noqa: S506 - the reference: PyYAML's general way, safe tags only


# --------------------------------------------------------------------------- the plan kept in .git
def _repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_kept_plan_is_the_plan(tmp_path):
    repo = _repo(tmp_path)
    answers = designs.rich()
    text = yamlio.dump(answers).encode()
    got_answers, got_plan = plancache.plan_of(repo, text)  # planned, and stored
    assert plancache.load(repo, text) is not None
    again_answers, again_plan = plancache.plan_of(repo, text)  # from the store
    loaded = yamlio.load(text)
    assert again_plan == got_plan == plan(parse(loaded)) and again_answers == got_answers == loaded


def test_kept_plan_is_keyed_by_the_answers_bytes_and_the_code(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    text = yamlio.dump(designs.base()).encode()
    plancache.plan_of(repo, text)
    assert plancache.load(repo, text + b"\n") is None  # another file (even if the same design)
    monkeypatch.setattr(plancache, "_code", lambda: b"another version of cruijff_gen")
    assert plancache.load(repo, text) is None


def test_a_moved_experiment_never_meets_the_plan_of_its_old_place(tmp_path):
    """experiment.dir defaults to where the experiment is (experiment_dir.read_answers), so the plan of the
    same answers bytes differs by place: `mv exp elsewhere` must plan again, not reuse the old `cd`."""
    repo = _repo(tmp_path / "here")
    text = yamlio.dump(designs.base()).encode()
    plancache.store(repo, text, designs.base(), "planned here")
    assert plancache.load(repo, text)[1] == "planned here"
    moved = tmp_path / "there"
    repo.rename(moved)
    assert plancache.load(moved, text) is None


def test_nothing_kept_for_a_user_catalog_a_non_repository_or_a_damaged_entry(tmp_path):
    repo = _repo(tmp_path / "repo")
    design = {**designs.base(), "model_catalog": "/somewhere/catalog.yaml"}
    plancache.store(repo, b"answers", design, "a plan")  # the catalog file is not part of the key
    assert plancache.load(repo, b"answers") is None
    (tmp_path / "plain").mkdir()
    plancache.store(tmp_path / "plain", b"answers", designs.base(), "a plan")
    assert plancache.load(tmp_path / "plain", b"answers") is None and not (tmp_path / "plain/.git").exists()
    plancache.store(repo, b"other", designs.base(), "a plan")
    entry = plancache._path(repo, b"other")
    assert pickle.loads(entry.read_bytes()) == (designs.base(), "a plan")  # noqa: S301 - the entry just written
    entry.write_bytes(b"\x80\x05 torn")
    assert plancache.load(repo, b"other") is None


def test_only_the_newest_plans_are_kept(tmp_path):
    repo = _repo(tmp_path)
    for i in range(plancache.KEEP + 3):
        plancache.store(repo, f"answers {i}".encode(), designs.base(), i)
    assert len(list((repo / ".git" / plancache.DIR_NAME).glob("plan-*.pickle"))) == plancache.KEEP
    assert plancache.load(repo, f"answers {plancache.KEEP + 2}".encode())[1] == plancache.KEEP + 2


# --------------------------------------------------------------------------- the answers file's design record
def _answers(design: dict) -> dict:
    """What Copier hands the answers file's template: the template version first, then the answers."""
    return {"_commit": "abc1234", "_src_path": "/templates/cruijff_gen", "conda_env": "", "max_in_queue": 0, **design}


def _reads_back(answers: dict) -> dict:
    text = experiment_dir.answers_text(answers)
    assert yaml.safe_load(text) is not None  # Copier reads it with PyYAML's pure-Python loader
    return experiment_dir.design_from_text(text, ".copier-answers.yml")


def test_the_design_record_reads_back_as_the_earlier_layout():
    answers = _answers(designs.rich())
    text = experiment_dir.answers_text(answers)
    assert "\n_cruijff_design: |\n  {\n" in text and "\nruns:" not in text
    earlier = yamlio.load(yaml.dump(answers, indent=4, allow_unicode=True, default_flow_style=False))  # the layout before the record
    got = _reads_back(answers)
    assert got == earlier and list(got) == list(earlier)  # the same mapping, keys in the same order
    assert list(got["runs"][0]) == list(earlier["runs"][0])
    assert set(yaml.safe_load(text)) == {"_commit", "_src_path", "conda_env", "max_in_queue", "_cruijff_design"}  # Copier's last answers: no design


def test_one_changed_value_is_one_changed_line():
    design = designs.base()
    before = experiment_dir.answers_text(_answers(design)).splitlines()
    design["runs"][0]["parameters"]["lr"] = 3e-5
    after = experiment_dir.answers_text(_answers(design)).splitlines()
    assert len(before) == len(after) and [(a, b) for a, b in zip(before, after) if a != b] == [('      "lr": "1e-5"', '      "lr": 3e-05')]


DESIGN_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
DESIGN_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False), DESIGN_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(DESIGN_TEXT, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["experiment", "controls", "runs", "variables"]), DESIGN_VALUE, min_size=1))
def test_any_design_reads_back_exactly(design):
    """Every text (NEL, DEL, control characters, any script), number and nesting JSON holds
    goes through the record and reads back exactly."""
    answers = _answers(design)
    got = _reads_back(answers)
    assert got == answers
    assert experiment_dir.answers_text(got) == experiment_dir.answers_text(answers)  # byte-identical when written again


def test_what_json_cannot_hold_keeps_the_earlier_layout():
    day = dt.date(2025, 10, 22)
    dated = _answers({**designs.base(), "experiment": {**designs.base()["experiment"], "date": day}})
    text = experiment_dir.answers_text(dated)
    assert "\n_cruijff_experiment_date: 2025-10-22\n" in text and '"date": "2025-10-22"' in text  # the record, the date beside it
    assert _reads_back(dated)["experiment"]["date"] == day
    moment = dt.datetime(2025, 10, 22, 9, 30, tzinfo=dt.timezone.utc)
    assert _reads_back(_answers({"experiment": {"date": moment}}))["experiment"]["date"] == moment
    for design in ({"runs": [{"name": "r", "parameters": {"when": day}}]}, {"variables": {1: ["a"]}}, {"controls": {"x": float("inf")}}):
        text = experiment_dir.answers_text(_answers(design))
        got = _reads_back(_answers(design))
        assert ("_cruijff_design" in text) == ("inf" in str(design)) and got == _answers(design)


def test_a_damaged_record_is_one_line_naming_it(tmp_path):
    text = experiment_dir.answers_text(_answers(designs.base()))
    for damaged, what in ((text.replace('"r8"', '"r8'), "not valid JSON"),
                          (text + "runs: []\n", "section 'runs' is also a top-level entry"),
                          (text.replace('  "controls"', '  "control"'), "not a design section: 'control'")):
        (tmp_path / ".copier-answers.yml").write_text(damaged)
        with pytest.raises(DesignError) as caught:
            experiment_dir.read_answers(tmp_path)
        assert caught.value.lines() == [f".copier-answers.yml: _cruijff_design: {what} (it is written by the template: "
                                        "restore it with `git checkout -- .copier-answers.yml`)"] or what in caught.value.lines()[0]
    long = {**designs.base(), "controls": {**designs.base()["controls"], "prompt": "x" * (yamlio.MAX_TEXT + 1)}}
    (tmp_path / ".copier-answers.yml").write_text(experiment_dir.answers_text(_answers(long)))
    with pytest.raises(DesignError, match=r"controls\.prompt: a text of 100,001 characters"):
        experiment_dir.read_answers(tmp_path)


@pytest.mark.copier
def test_a_first_scaffold_keeps_its_plan(scaffold):
    """The render task of the first `copier copy` plans before the experiment has a .git directory;
    it keeps the plan once it has committed, so the first verify, hook and update after a scaffold
    do not plan the design again (at 1,000 runs the first update spent 1.6 s re-planning it)."""
    dest = scaffold(designs.base())
    answers = (dest / experiment_dir.ANSWERS_FILE).read_bytes()
    kept = plancache.load(dest, answers)
    assert kept is not None, sorted(p.name for p in (dest / ".git").iterdir())
    assert kept[1] == plan(parse(experiment_dir.read_answers(dest)))


def test_an_updates_summary_mark_holds_for_exactly_those_bytes_once(tmp_path):
    """finish-update skips reading experiment_summary.yaml again only when the render task marked
    these very answers-file and summary bytes (every design section came from that summary)."""
    (tmp_path / ".git").mkdir()
    answers, summary = b"_commit: abc\n", b"runs: []\n"
    assert not plancache.summary_marked(tmp_path, answers, summary)  # nothing marked
    plancache.mark_summary(tmp_path, answers, summary)
    assert plancache.summary_marked(tmp_path, answers, summary)
    assert not plancache.summary_marked(tmp_path, answers, summary)  # used once
    for other_answers, other_summary in ((answers, b"runs: [x]\n"), (b"_commit: abd\n", summary)):
        plancache.mark_summary(tmp_path, answers, summary)
        assert not plancache.summary_marked(tmp_path, other_answers, other_summary)
