"""The design's schema: the sections of experiment_summary.yaml (Design: experiment, tools,
variables, controls, models, data, output, runs, evaluation) and the cluster settings (Settings), as
pydantic models of the value types of field_types.py; `controls` and `runs[].parameters` take their
fields from the hyperparameter table of data/defaults.yaml. A field's own rules live here; rules
across fields are cross_checks.py's. `validation_problems` reads pydantic's errors as Problems: the
path of the offending value and one message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator

from . import facts
from .errors import Problem
from .field_types import (
    Bool,
    Date,
    Int,
    Line,
    Number,
    OptLine,
    OptSlurmWord,
    PathText,
    PosInt,
    RunName,
    SlurmMem,
    SlurmTime,
    SlurmWord,
    TaskName,
    Text,
    fail,
    hyper_type,
    no_space_path,
    shown,
    str_list,
    to_bool,
    to_int,
    to_number,
)


# --------------------------------------------------------------------------- sections
def _hyper_model(model_name: str, required: tuple[str, ...] = (), extra_fields: dict | None = None):
    fields: dict[str, Any] = {}
    for name in facts.hyperparameters():
        typ = hyper_type(name)
        fields[name] = (typ, ...) if name in required else (typ, None)  # an explicit null goes through check()
    fields.update(extra_fields or {})
    return create_model(model_name, __config__=ConfigDict(extra="allow", defer_build=True), **fields)


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)  # built at the first parse: a process that only reads kept plans (finish-update, verify, the hooks) never pays it


class Experiment(_Section):
    name: Line
    project: Line | None = None
    question: Text
    date: Date
    hypothesis: Text | None = None
    purpose: Text | None = None
    dir: Annotated[str, BeforeValidator(no_space_path)]


class Tools(_Section):
    preparation: Text = facts.DEFAULT_TOOLS["preparation"]
    evaluation: Text = facts.DEFAULT_TOOLS["evaluation"]

    @field_validator("preparation", "evaluation")
    @classmethod
    def _supported(cls, value: str, info: Any) -> str:
        supported = facts.SUPPORTED_TOOLS[info.field_name]
        if value not in supported:
            raise fail("unknown tool {got}; supported: {supported}", got=shown(value), supported=", ".join(supported))
        return value


Controls = _hyper_model(
    "Controls",
    required=("epochs", "batch_size", "system_prompt", "dataset_type"),
    # runs expanded from `variables` get one `<model>_base` control per model (see variables.py)
    extra_fields={"add_control_runs": (Annotated[bool, BeforeValidator(to_bool)] | None, None)},
)
Parameters = _hyper_model("Parameters", extra_fields={"checkpoint_path": (PathText | None, None)})


class BaseModelSpec(_Section):
    name: Line
    path: PathText
    size_gb: Annotated[float, BeforeValidator(to_number)] | None = None


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
            raise fail("must contain the placeholder {input}, got {got}", got=shown(value))
        return value


def _epoch_list(value: Any) -> Any:
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, dict):
        raise fail("expected an epoch number or a list of them, got {got}", got=shown(value))
    return [value]  # `epochs: 0` means [0]


class MatrixEntry(_Section):
    run: Line
    tasks: Annotated[list[Line], BeforeValidator(str_list), Field(min_length=1)]
    epochs: Annotated[list[Annotated[int, BeforeValidator(to_int)]] | None, BeforeValidator(_epoch_list)] = None
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
    return str_list(value)


def _mapping(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise fail("expected a mapping, got {got}", got=shown(value))
    return value


# inspect model arguments (-M) every eval command gets from the design: eval_model_args may not set them.
DESIGN_MODEL_ARGS = {"model_path": "runs[].model (the run's checkpoint or base model)", "do_sample": "evaluation.do_sample"}


def _model_args(value: Any) -> dict[str, Any]:
    args = _mapping(value)
    for key in args:
        if key in DESIGN_MODEL_ARGS:
            raise fail("{key}: every eval command already passes -M {key} from the design; to change it, edit the design field {field}",
                       key=key, field=DESIGN_MODEL_ARGS[key])
    return args


def _queue_cap(value: Any) -> int:
    """max_in_queue: a whole number >= 0 (0 or not set: no cap)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    number = to_int(value)
    if number < 0:
        raise fail("expected 0 (no cap) or more, got {got}", got=shown(value))
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


def validation_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """pydantic's errors as Problems: the path of each offending value (under `prefix`) and its message."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "list[...]")))
        path = _format_loc(((prefix,) if prefix else ()) + loc)
        template = _BUILTIN_MESSAGES.get(err["type"])
        message = template.format(msg=err["msg"].replace("Input should be", "expected"), got=shown(err.get("input"))) if template else err["msg"]
        problems.append(Problem(path, message))
    # one error per path is enough
    unique: dict[str, Problem] = {}
    for p in problems:
        unique.setdefault(p.path, p)
    return list(unique.values())


def given_fields(model: Any, only: Any = None) -> dict[str, Any]:
    """Fields a design actually wrote (not pydantic defaults); with `only`, just those named in it."""
    return {k: getattr(model, k) for k in model.model_fields_set if only is None or k in only}
