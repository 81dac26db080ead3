"""Parse stage: raw answers (experiment_summary sections + cluster settings) -> a typed Design.

Validation is declarative: pydantic models for the sections, the hyperparameter table of
data/defaults.yaml for `controls` and `runs[].parameters`. Every error names the path of the
offending value (`runs[3].parameters.lr: expected a number, got 'fast'`). Cross references
(runs -> models, matrix -> runs/tasks, epochs, names) are checked here too, so that nothing
after this stage can fail on bad input.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from . import facts, variables
from .errors import CruijffError, DesignError, Problem
from .experiment_dir import ANSWERS_FILE, DESIGN_SECTIONS, DEST_KEY, TOP_LEVEL_FILES, empty_section

# experiment.dir left out where no experiment directory is known (cruijff-gen plan SUMMARY)
NO_DIR = Problem("experiment.dir", "not given, and no destination to default to: give it, or --dest DIR (its default is the experiment's directory)")

# DESIGN_SECTIONS (the sections of experiment_summary.yaml) is defined in experiment_dir, which
# records them in the answers file.
# A run is a top-level directory of the experiment: not one of its other top-level names (logs/,
# results/ of `cruijff-gen results`, the generated files, the answers file), in any letter case.
RESERVED_RUN_NAMES = {"logs", "eval", "results", ANSWERS_FILE, *TOP_LEVEL_FILES}


# --------------------------------------------------------------------------- value types
def _fail(message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("cruijff", message, ctx)


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool) or value is None:
        raise _fail("expected a number, got {got}", got=_got(value))
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))  # YAML 1.1 reads 5e-4 as text
        except ValueError:
            raise _fail("expected a number, got {got}", got=_got(value)) from None
    else:
        raise _fail("expected a number, got {got}", got=_got(value))
    if isinstance(number, float) and not math.isfinite(number):
        raise _fail("expected a finite number, got {got}", got=_got(value))
    return number


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise _fail("expected a whole number, got {got}", got=_got(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise _fail("expected a whole number, got {got}", got=_got(value))


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail("expected true or false, got {got}", got=_got(value))


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _fail("expected text, got {got}", got=_got(value))


def _to_line(value: Any) -> str:
    text = _to_text(value)
    if not text.strip():
        raise _fail("must not be empty")
    if "\n" in text or "\r" in text or "\0" in text:
        raise _fail("must be a single line, got {got}", got=_got(value))
    return text


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise _fail("expected a date YYYY-MM-DD, got {got}", got=_got(value))
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail("expected a date YYYY-MM-DD, got {got}", got=_got(value))


_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=-]{0,119}")
_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def _to_run_name(value: Any) -> str:
    text = _to_text(value)
    if text.casefold() in {n.casefold() for n in RESERVED_RUN_NAMES}:
        raise _fail("{got} is a name the experiment's top level already uses ({names}); choose another run name",
                    got=_got(value), names=", ".join(sorted(RESERVED_RUN_NAMES)))
    if not _RUN_NAME.fullmatch(text):
        raise _fail(
            "{got} is not safe as a directory name (use letters, digits and . _ - + =; "
            "no spaces or '/', no leading '-' or '.', not 'logs' or 'eval', at most 120 characters)",
            got=_got(value),
        )
    return text


def _to_task_name(value: Any) -> str:
    text = _to_text(value)
    if not _TASK_NAME.fullmatch(text):
        raise _fail(
            "{got} is not a valid task name (an inspect task function name: letters, digits "
            "and '_', not starting with a digit)",
            got=_got(value),
        )
    return text


def _to_path(value: Any) -> str:
    text = _to_line(value)
    if any(part == ".." for part in PurePosixPath(text).parts):
        raise _fail("must not contain '..', got {got}", got=_got(value))
    if "," in text:  # inspect splits -T/-M values at commas
        raise _fail("must not contain ',' (inspect would split it into a list), got {got}", got=_got(value))
    return text


def _to_time(value: Any) -> str:
    # SLURM --time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    text = _to_text(value).strip()
    if re.fullmatch(r"(\d+-)?\d+(:\d{2}){0,2}", text):
        return text
    raise _fail("expected a SLURM time such as 04:00:00 or 1-00:00:00, got {got}", got=_got(value))


def _to_mem(value: Any) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if text and (m := re.fullmatch(r"(\d+)\s*([KMGT]?)B?", text, flags=re.IGNORECASE)):
        return m.group(1) + m.group(2).upper()  # 80GB and 80g are SLURM's 80G
    raise _fail("expected a SLURM memory size such as 80G, got {got}", got=_got(value))


Number = Annotated[float, BeforeValidator(_to_number)]
Int = Annotated[int, BeforeValidator(_to_int)]
Bool = Annotated[bool, BeforeValidator(_to_bool)]
Text = Annotated[str, BeforeValidator(_to_text)]
Line = Annotated[str, BeforeValidator(_to_line)]
Date = Annotated[dt.date, BeforeValidator(_to_date)]
RunName = Annotated[str, BeforeValidator(_to_run_name)]
TaskName = Annotated[str, BeforeValidator(_to_task_name)]
PathText = Annotated[str, BeforeValidator(_to_path)]
SlurmTime = Annotated[str, BeforeValidator(_to_time)]
SlurmMem = Annotated[str, BeforeValidator(_to_mem)]


def _positive(value: int) -> int:
    if value < 1:
        raise _fail("must be at least 1, got {got}", got=_got(value))
    return value


PosInt = Annotated[int, BeforeValidator(lambda v: _positive(_to_int(v)))]


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise _fail("expected a list, got {got}", got=_got(value))
    return [_to_line(v) for v in value]


# --------------------------------------------------------------------------- hyperparameters
_TYPE_CONVERTERS = {"int": _to_int, "float": lambda v: float(_to_number(v)), "number": _to_number, "bool": _to_bool, "str": _to_text, "list": _str_list}


def _hyper_converter(name: str, spec: dict[str, Any]):
    convert = _TYPE_CONVERTERS[spec["type"]]
    aliases = facts.defaults().get("component_aliases", {}).get(name, {})

    def check(value: Any) -> Any:
        if value is None:
            if "default" in spec and spec["default"] is None:
                return None  # null is this one's default (max_steps_per_epoch: no cap)
            # a null would reach finetune.yaml as `lr: null` (or crash the plan): refused, by name
            raise _fail("expected a value, got null (leave the field out to take its default)")
        value = convert(value)
        if "min" in spec and value < spec["min"]:
            raise _fail("must be at least {min}, got {got}", min=spec["min"], got=_got(value))
        if spec.get("positive") and value <= 0:
            raise _fail("must be greater than 0, got {got}", got=_got(value))
        if "choices" in spec and isinstance(value, list):
            bad = [v for v in value if v not in spec["choices"]]
            if bad or not value:
                raise _fail("expected a non-empty list of {choices}, got {got}", choices=", ".join(spec["choices"]), got=_got(value))
        elif "choices" in spec and value not in spec["choices"]:
            raise _fail("expected one of {choices}, got {got}", choices=", ".join(spec["choices"]), got=_got(value))
        if name == "prompt" and "{input}" not in value:
            raise _fail("must contain the placeholder {input}, got {got}", got=_got(value))
        return aliases.get(value, value) if isinstance(value, str) else value

    return Annotated[Any, BeforeValidator(check)]


def hyper_type(name: str):
    """The checked type of one hyperparameter of the table (used for `variables` values too)."""
    return _hyper_converter(name, facts.hyperparameters()[name])


def _hyper_model(model_name: str, required: tuple[str, ...] = (), extra_fields: dict | None = None):
    fields: dict[str, Any] = {}
    for name, spec in facts.hyperparameters().items():
        typ = _hyper_converter(name, spec)
        fields[name] = (typ, ...) if name in required else (typ, None)  # an explicit null goes through check()
    fields.update(extra_fields or {})
    return create_model(model_name, __config__=ConfigDict(extra="allow", defer_build=True), **fields)


# --------------------------------------------------------------------------- sections
class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)  # built at the first parse: a process that only reads kept plans (finish-update, verify, the hooks) never pays it


SBATCH_WORD = re.compile(r"[A-Za-z0-9_.,:@%+=/|&*-]+")  # one word of a #SBATCH value: no spaces, quotes, #


def _to_slurm_word(value: Any) -> str:
    """A value written after `#SBATCH --option=`: sbatch reads the rest of the line as options, so a
    space would add options of its own (`gpu --gres=gpu:8`)."""
    text = _to_line(value).strip()
    if not SBATCH_WORD.fullmatch(text):
        raise _fail("expected one word (letters, digits and . , : @ % + = / | & * _ -): it is written into "
                    "#SBATCH lines, where a space or quote would add options; got {got}", got=_got(value))
    return text


def _optional(convert: Any) -> Any:
    """A setting that may be left unset: None or blank text is "" (not set), else `convert`."""
    def check(value: Any) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            return ""
        return convert(value)
    return check


SlurmWord = Annotated[str, BeforeValidator(_to_slurm_word)]
OptSlurmWord = Annotated[str, BeforeValidator(_optional(_to_slurm_word))]


def _no_space_path(value: Any) -> str:
    text = _to_path(value)
    if any(c.isspace() for c in text):
        raise _fail("must not contain spaces: it reaches #SBATCH --output lines, which SLURM splits at spaces; got {got}", got=_got(value))
    return text


class Experiment(_Section):
    name: Line
    project: Line | None = None
    question: Text
    date: Date
    hypothesis: Text | None = None
    purpose: Text | None = None
    dir: Annotated[str, BeforeValidator(_no_space_path)]


class Tools(_Section):
    preparation: Text = facts.DEFAULT_TOOLS["preparation"]
    evaluation: Text = facts.DEFAULT_TOOLS["evaluation"]

    @field_validator("preparation", "evaluation")
    @classmethod
    def _supported(cls, value: str, info: Any) -> str:
        supported = facts.SUPPORTED_TOOLS[info.field_name]
        if value not in supported:
            raise _fail("unknown tool {got}; supported: {supported}", got=_got(value), supported=", ".join(supported))
        return value


Controls = _hyper_model(
    "Controls",
    required=("epochs", "batch_size", "system_prompt", "dataset_type"),
    # runs expanded from `variables` get one `<model>_base` control per model (see variables.py)
    extra_fields={"add_control_runs": (Annotated[bool, BeforeValidator(_to_bool)] | None, None)},
)
Parameters = _hyper_model("Parameters", extra_fields={"checkpoint_path": (PathText | None, None)})


class BaseModelSpec(_Section):
    name: Line
    path: PathText
    size_gb: Annotated[float, BeforeValidator(_to_number)] | None = None


class Models(_Section):
    base: Annotated[list[BaseModelSpec], Field(min_length=1)]


class TrainingData(_Section):
    path: PathText
    dataset_label: Line | None = None
    format: Literal["json", "parquet"]
    column_map: dict[Literal["input", "output"], Line] | None = None  # the data's column names (default: input, output)
    size_kb: Number | None = None
    splits: dict[str, Int] | None = None


class Data(_Section):
    training: TrainingData


class Output(_Section):
    wandb_project: Line | None = None
    base_directory: PathText | None = None


class Compute(_Section):
    time: SlurmTime | None = None
    gpus: PosInt | None = None
    mem: SlurmMem | None = None
    cpus: PosInt | None = None
    partition: SlurmWord | None = None
    constraint: SlurmWord | None = None


class Run(_Section):
    name: RunName
    type: Literal["fine-tuned", "control", "eval-only"]
    model: Line
    parameters: Parameters = Field(default_factory=Parameters)  # type: ignore[valid-type]
    compute: Compute | None = None
    mig: Bool = False

    @field_validator("parameters", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class Task(_Section):
    name: TaskName
    script: PathText
    description: Text | None = None
    dataset: PathText | None = None
    prompt: Text | None = None
    system_prompt: Text | None = None

    @field_validator("prompt")
    @classmethod
    def _has_input(cls, value: str | None) -> str | None:
        if value is not None and "{input}" not in value:
            raise _fail("must contain the placeholder {input}, got {got}", got=_got(value))
        return value


def _epoch_list(value: Any) -> Any:
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, dict):
        raise _fail("expected an epoch number or a list of them, got {got}", got=_got(value))
    return [value]  # `epochs: 0` means [0]


class MatrixEntry(_Section):
    run: Line
    tasks: Annotated[list[Line], BeforeValidator(_str_list), Field(min_length=1)]
    epochs: Annotated[list[Annotated[int, BeforeValidator(_to_int)]] | None, BeforeValidator(_epoch_list)] = None
    vis_label: Line | None = None


def _scorer(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class Scorer(_Section):
    name: Line
    params: dict[str, Any] = Field(default_factory=dict)


class Evaluation(_Section):
    tasks: list[Task] = Field(default_factory=list)
    matrix: list[MatrixEntry] | None = None
    scorers: list[Annotated[Scorer, BeforeValidator(_scorer)]] = Field(default_factory=list)
    temperature: Number | None = None
    do_sample: Bool | None = None
    max_tokens: PosInt | None = None
    max_connections: PosInt | None = None
    seed: Int | None = None
    compute: Compute | None = None


class Design(_Section):
    experiment: Experiment
    tools: Tools = Field(default_factory=Tools)
    variables: dict[str, list[Any]] | None = None
    controls: Controls  # type: ignore[valid-type]
    models: Models
    data: Data
    output: Output = Field(default_factory=Output)
    runs: Annotated[list[Run], Field(min_length=1)]
    evaluation: Evaluation = Field(default_factory=Evaluation)

    @field_validator("tools", "output", "evaluation", "variables", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any, info: Any) -> Any:
        if value is None or value == {}:
            return None if info.field_name == "variables" else {}
        return value


def _modules(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return value.split()
    return _str_list(value)


def _mapping(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise _fail("expected a mapping, got {got}", got=_got(value))
    return value


OptLine = Annotated[str, BeforeValidator(_optional(_to_line))]

# inspect model arguments (-M) every eval command gets from the design: eval_model_args may not set them.
DESIGN_MODEL_ARGS = {"model_path": "runs[].model (the run's checkpoint or base model)", "do_sample": "evaluation.do_sample"}


def _model_args(value: Any) -> dict[str, Any]:
    args = _mapping(value)
    for key in args:
        if key in DESIGN_MODEL_ARGS:
            raise _fail("{key}: every eval command already passes -M {key} from the design; to change it, edit the design field {field}",
                        key=key, field=DESIGN_MODEL_ARGS[key])
    return args


def _queue_cap(value: Any) -> int:
    """max_in_queue: a whole number >= 0 (0 or not set: no cap)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    number = _to_int(value)
    if number < 0:
        raise _fail("expected 0 (no cap) or more, got {got}", got=_got(value))
    return number


class Settings(_Section):
    """Per-cluster settings (Copier questions; see copier.yml). Empty = not set."""

    conda_env: OptLine = ""
    venv: OptLine = ""
    modules: Annotated[list[str], BeforeValidator(_modules)] = Field(default_factory=list)
    slurm_account: OptSlurmWord = ""
    slurm_partition: OptSlurmWord = ""
    slurm_constraint: OptSlurmWord = ""
    mail_user: OptSlurmWord = ""
    mail_type: OptSlurmWord = ""
    models_dir: OptLine = ""
    scratch_dir: OptLine = ""
    model_catalog: OptLine = ""
    finetune_overrides: Annotated[dict[str, Any], BeforeValidator(_mapping)] = Field(default_factory=dict)
    eval_model_args: Annotated[dict[str, Any], BeforeValidator(_model_args)] = Field(default_factory=dict)
    max_in_queue: Annotated[int, BeforeValidator(_queue_cap)] = 0  # cruijff-gen submit's queue cap (0: none)


# The settings' answer keys: Settings' fields, in order (copier.yml asks the same questions;
# tests/test_parse.py checks they agree).
SETTINGS_KEYS = tuple(Settings.model_fields)


# --------------------------------------------------------------------------- errors
def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-") or str(part) in {"list[...]"}:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


_BUILTIN_MESSAGES = {
    "missing": "required field is missing",
    "model_type": "expected a mapping, got {got}",
    "model_attributes_type": "expected a mapping, got {got}",
    "dict_type": "expected a mapping, got {got}",
    "list_type": "expected a list, got {got}",
    "string_type": "expected text, got {got}",
    "too_short": "must not be empty",
    "literal_error": "{msg}, got {got}",
}


def _problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "list[...]")))
        path = _format_loc(((prefix,) if prefix else ()) + loc)
        template = _BUILTIN_MESSAGES.get(err["type"])
        message = template.format(msg=err["msg"].replace("Input should be", "expected"), got=_got(err.get("input"))) if template else err["msg"]
        problems.append(Problem(path, message))
    # one error per path is enough
    unique: dict[str, Problem] = {}
    for p in problems:
        unique.setdefault(p.path, p)
    return list(unique.values())


# --------------------------------------------------------------------------- unknown and unused fields
def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


_PLAIN_KEY = re.compile(r"[^\s.\[\]:]+")


def _unknown_hyperparameters(design: Design) -> list[Problem]:
    """A key in controls or a run's parameters that no hyperparameter has is a typo until shown
    otherwise: refused (a silent default would train something else), with the nearest name."""
    known = set(facts.hyperparameters()) | {"add_control_runs", "checkpoint_path"}
    sections = [("controls", design.controls)] + [(f"runs[{i}].parameters", r.parameters) for i, r in enumerate(design.runs)]
    return [
        # a key a dotted path cannot show (blank, spaces, `.`, `[`, `:`) is named by the message, at its section
        Problem(f"{where}.{key}" if _PLAIN_KEY.fullmatch(str(key)) else where, f"unknown hyperparameter {key!r}{did_you_mean(key, known)}; "
                "the hyperparameters a design may set are listed in cruijff_gen/data/defaults.yaml")
        for where, section in sections for key in sorted(section.model_extra or {})
    ]



def _extras(model: BaseModel, path: str) -> list[str]:
    """Paths of fields a design gave that no stage consumes."""
    found: list[str] = []
    for key in sorted((model.model_extra or {}).keys()):
        found.append(f"{path}.{key}" if path else str(key))
    for name in type(model).model_fields:
        value = getattr(model, name)
        sub = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            found += _extras(value, sub)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += _extras(item, f"{sub}[{i}]")
    return found


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Parsed:
    design: Design
    settings: Settings
    catalog: facts.Catalog
    unused: list[str] = field(default_factory=list)  # paths of given fields nothing consumes
    warnings: list[str] = field(default_factory=list)
    expanded: bool = False  # runs came from `variables`


def extra_keys(keys: Any) -> list[str]:
    """The top-level keys (of Copier's data: the summary's and --data's) that are neither design
    sections, cluster settings nor Copier's own (`_...`): nothing reads them."""
    return [k for k in keys if k not in DESIGN_SECTIONS and k not in SETTINGS_KEYS and not k.startswith("_")]


def parse(answers: dict[str, Any], extra_top_level: tuple[str, ...] = ()) -> Parsed:
    """Validate raw answers (summary sections + settings) into a Parsed design, or raise DesignError."""
    if not isinstance(answers, dict):
        raise DesignError(Problem("", f"expected a mapping of sections ({', '.join(DESIGN_SECTIONS)}), got {_got(answers)}"))
    problems: list[Problem] = []
    # Copier fills a section the data file lacks with its default: that is a missing section. An
    # empty list stays, so `runs: []` reads "must not be empty" rather than "missing".
    raw_design = copy.deepcopy({k: answers[k] for k in DESIGN_SECTIONS if not empty_section(answers.get(k)) or answers.get(k) == []})
    problems = _apply_aliases(raw_design)
    if problems:
        raise DesignError(problems)
    experiment = raw_design.get("experiment")
    if isinstance(experiment, dict) and experiment.get("dir") is None and answers.get(DEST_KEY):
        experiment["dir"] = answers[DEST_KEY]  # omitted: the experiment's own directory (experiment_dir.read_answers)
    raw_settings = {k: answers[k] for k in SETTINGS_KEYS if k in answers}
    try:
        settings = Settings.model_validate(raw_settings)
    except ValidationError as exc:
        raise DesignError([Problem(f"settings.{p.path}", p.message) for p in _problems(exc)]) from None
    try:
        catalog = facts.catalog(settings.model_catalog)
    except CruijffError as exc:
        raise DesignError(Problem("settings.model_catalog", str(exc))) from exc
    expanded = raw_design.get("runs") in (None, []) and bool(raw_design.get("variables"))
    swept = raw_design.get("variables") if isinstance(raw_design.get("variables"), dict) else {}
    controls = raw_design.get("controls")
    if isinstance(controls, dict):  # a swept value is every run's own: controls need not repeat it
        for name, values in swept.items():
            if name not in controls and isinstance(values, list) and values and name in facts.hyperparameters():
                controls[name] = values[0]
    if expanded:
        runs, problems = variables.expand(raw_design, catalog, hyper_type)
        if problems:
            raise DesignError(problems)
        raw_design["runs"] = runs
    try:
        design = Design.model_validate(raw_design)
    except ValidationError as exc:
        raise DesignError([NO_DIR if p.path == "experiment.dir" and p.message == "required field is missing" else p for p in _problems(exc)]) from None
    if swept and not expanded:  # the values are valid: now the runs must be the sweep they describe
        problems = variables.check_runs(raw_design, catalog, hyper_type)
        if problems:
            raise DesignError(problems)
    problems, warnings = _check_references(design, settings, catalog)
    problems = _unknown_hyperparameters(design) + problems
    if problems:
        raise DesignError(list({p.path: p for p in reversed(problems)}.values())[::-1] if len(problems) > 1 else problems)
    if design.controls.add_control_runs and not expanded:
        warnings.append("controls.add_control_runs: not used: it adds controls only to runs expanded from variables (this design lists its runs)")
    unused = _extras(design, "") + extra_keys(extra_top_level)
    if design.output.base_directory is not None:
        warnings.append(
            "output.base_directory: not used: checkpoints always go to <experiment dir>/<run>/artifacts/ "
            "(SLURM output, torchtune output_dir and eval cells all point there)"
        )
    return Parsed(design, settings, catalog, unused, warnings, expanded)


def _apply_aliases(raw: dict[str, Any]) -> list[Problem]:
    """Rename alias keys (data/defaults.yaml `aliases`) in place; both forms given is an error."""
    table = facts.defaults().get("aliases", {})
    problems: list[Problem] = []

    def rename(mapping: Any, aliases: dict[str, str], where: str) -> None:
        if not isinstance(mapping, dict):
            return
        for alias, name in aliases.items():
            if alias in mapping:
                if name in mapping:
                    problems.append(Problem(f"{where}.{alias}", f"give either {alias} or {name}, not both"))
                else:
                    mapping[name] = mapping.pop(alias)

    params = table.get("parameters", {})
    rename(raw.get("controls"), params, "controls")
    rename(raw.get("variables"), params, "variables")
    runs = raw.get("runs")
    for i, run in enumerate(runs if isinstance(runs, list) else []):
        if isinstance(run, dict):
            rename(run.get("parameters"), params, f"runs[{i}].parameters")
    rename(raw.get("experiment"), table.get("experiment", {}), "experiment")
    rename((raw.get("data") or {}).get("training") if isinstance(raw.get("data"), dict) else None, table.get("data.training", {}), "data.training")
    return problems


def given_fields(model: Any, only: Any = None) -> dict[str, Any]:
    """Fields a design actually wrote (not pydantic defaults); with `only`, just those named in it."""
    return {k: getattr(model, k) for k in model.model_fields_set if only is None or k in only}


def _check_references(design: Design, settings: Settings, catalog: facts.Catalog) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    warnings: list[str] = []

    def absolute(path: str, where: str, base: str, base_name: str) -> None:
        if not path.startswith("/") and not base:
            problems.append(Problem(where, f"relative path {path!r} needs the cluster setting {base_name} (or give an absolute path)"))

    absolute(design.experiment.dir, "experiment.dir", settings.scratch_dir, "scratch_dir")
    absolute(design.data.training.path, "data.training.path", settings.scratch_dir, "scratch_dir")

    declared: dict[str, int] = {}
    for i, model in enumerate(design.models.base):
        entry = catalog.get(model.name)
        for section in ("resources", "eval_resources", "mig"):
            values = getattr(entry, section) if entry is not None else None
            if values:  # catalog resources reach #SBATCH lines: the same rules as a run's compute
                try:
                    Compute.model_validate(values)
                except ValidationError as exc:
                    where = f"model catalog {settings.model_catalog or 'cruijff_gen/data/catalog.yaml'}: {entry.name}.{section}"
                    problems += _problems(exc, where)
        if model.name in declared:
            problems.append(Problem(f"models.base[{i}].name", f"duplicate model {model.name!r} (also models.base[{declared[model.name]}])"))
        declared.setdefault(model.name, i)
        if catalog.get(model.name) is None:
            problems.append(Problem(f"models.base[{i}].name", f"unknown model {model.name!r}{did_you_mean(model.name, catalog.names())}; the catalog has: {', '.join(catalog.names())}"))
        absolute(model.path, f"models.base[{i}].path", settings.models_dir, "models_dir")

    seen: dict[str, int] = {}
    folded: dict[str, int] = {}
    controls = design.controls
    for i, run in enumerate(design.runs):
        where = f"runs[{i}]"
        if run.name in seen:
            problems.append(Problem(f"{where}.name", f"duplicate run name {run.name!r} (also runs[{seen[run.name]}])"))
        elif run.name.casefold() in folded:
            other = folded[run.name.casefold()]
            problems.append(Problem(f"{where}.name", f"run name {run.name!r} differs from runs[{other}].name {design.runs[other].name!r} only by case (their directories would collide on some file systems)"))
        seen.setdefault(run.name, i)
        folded.setdefault(run.name.casefold(), i)
        if run.model not in declared:
            problems.append(Problem(f"{where}.model", f"model {run.model!r} is not declared in models.base (declared: {', '.join(declared) or 'none'})"))
        params = run.parameters
        if run.type == "fine-tuned":
            if params.lora_rank is None and controls.lora_rank is None:
                problems.append(Problem(f"{where}.parameters.lora_rank", "required for fine-tuned runs (give it here or in controls)"))
            if params.checkpoint_path is not None:
                problems.append(Problem(f"{where}.parameters.checkpoint_path", "only eval-only runs take a checkpoint_path"))
        elif run.type == "eval-only":
            if params.checkpoint_path is None:
                problems.append(Problem(f"{where}.parameters.checkpoint_path", "required for eval-only runs (the checkpoint to evaluate)"))
            elif not params.checkpoint_path.startswith("/"):
                problems.append(Problem(f"{where}.parameters.checkpoint_path", f"expected an absolute path, got {params.checkpoint_path!r}"))
        entry = catalog.get(run.model)
        if entry is not None and run.type == "fine-tuned":
            own = given_fields(params)
            merged = {**given_fields(controls), **own}

            def origin(key: str) -> str:
                return f"{where}.parameters.{key}" if key in own else f"controls.{key}"

            if entry.tied_embeddings and merged.get("apply_lora_to_output"):
                problems.append(Problem(origin("apply_lora_to_output"), f"{run.model} ties its output layer to the embeddings; torchtune refuses LoRA on it (run {run.name})"))
            if not entry.system_role and merged.get("system_prompt"):
                problems.append(Problem(origin("system_prompt"), f"{run.model}'s chat template has no system turn (torchtune raises on a system message); use an empty system_prompt (run {run.name})"))
        if run.mig:
            if entry is not None and entry.mig is None:
                problems.append(Problem(f"{where}.mig", f"model {run.model!r} does not fit a MIG slice (only models with `mig` resources in the catalog do)"))

    tasks: dict[str, int] = {}
    for i, task in enumerate(design.evaluation.tasks):
        if task.name in tasks:
            problems.append(Problem(f"evaluation.tasks[{i}].name", f"duplicate task name {task.name!r} (also evaluation.tasks[{tasks[task.name]}])"))
        tasks.setdefault(task.name, i)
    runs_by_name = {r.name: r for r in design.runs}
    for i, entry in enumerate(design.evaluation.matrix or []):
        where = f"evaluation.matrix[{i}]"
        run = runs_by_name.get(entry.run)
        if run is None:
            problems.append(Problem(f"{where}.run", f"unknown run {entry.run!r} (runs: {', '.join(runs_by_name)})"))
        for j, task in enumerate(entry.tasks):
            if task not in tasks:
                problems.append(Problem(f"{where}.tasks[{j}]", f"unknown task {task!r} (evaluation.tasks: {', '.join(tasks) or 'none'})"))
        if run is None or entry.epochs is None:
            continue
        if run.type != "fine-tuned":
            problems.append(Problem(f"{where}.epochs", f"{run.type} run {run.name!r} is not trained; epochs must be null"))
            continue
        n_epochs = run.parameters.epochs or controls.epochs
        for j, epoch in enumerate(entry.epochs):
            if not 0 <= epoch < n_epochs:
                problems.append(Problem(f"{where}.epochs[{j}]", f"epoch {epoch} does not exist: epochs are 0-based and run {run.name!r} trains {n_epochs} epoch(s) (0..{n_epochs - 1})"))
    if design.evaluation.do_sample and not (design.evaluation.temperature or 0) > 0:
        problems.append(Problem("evaluation.temperature", "do_sample: true needs a temperature > 0"))
    return problems, warnings
