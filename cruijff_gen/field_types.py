"""The value types of the design's fields and the cluster settings, as pydantic reads them
(`Annotated[..., BeforeValidator(...)]`): numbers, whole numbers, single lines, dates, run and task
names, paths, SLURM times, memory sizes and #SBATCH words, and each hyperparameter of the table of
data/defaults.yaml. A value a type refuses raises `fail(...)`, whose message the parse stage shows
after the value's path (`runs[3].parameters.lr: expected a number, got 'fast'`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from . import facts
from .experiment_dir import ANSWERS_FILE, TOP_LEVEL_FILES

# A run is a top-level directory of the experiment: not one of its other top-level names (logs/,
# results/ of `cruijff-gen results`, the generated files, the answers file), in any letter case.
RESERVED_RUN_NAMES = {"logs", "eval", "results", ANSWERS_FILE, *TOP_LEVEL_FILES}


# --------------------------------------------------------------------------- value types
def fail(message: str, **ctx: Any) -> PydanticCustomError:
    """The error a value type raises: `message` with `{name}`s filled from `ctx`."""
    return PydanticCustomError("cruijff", message, ctx)


def shown(value: Any) -> str:
    """A value as a message shows it (its repr, at most 60 characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_number(value: Any) -> int | float:
    if isinstance(value, bool) or value is None:
        raise fail("expected a number, got {got}", got=shown(value))
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))  # YAML 1.1 reads 5e-4 as text
        except ValueError:
            raise fail("expected a number, got {got}", got=shown(value)) from None
    else:
        raise fail("expected a number, got {got}", got=shown(value))
    if isinstance(number, float) and not math.isfinite(number):
        raise fail("expected a finite number, got {got}", got=shown(value))
    return number


def to_int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise fail("expected a whole number, got {got}", got=shown(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise fail("expected a whole number, got {got}", got=shown(value))


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise fail("expected true or false, got {got}", got=shown(value))


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise fail("expected text, got {got}", got=shown(value))


def to_line(value: Any) -> str:
    text = to_text(value)
    if not text.strip():
        raise fail("must not be empty")
    if "\n" in text or "\r" in text or "\0" in text:
        raise fail("must be a single line, got {got}", got=shown(value))
    return text


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise fail("expected a date YYYY-MM-DD, got {got}", got=shown(value))
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise fail("expected a date YYYY-MM-DD, got {got}", got=shown(value))


_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=-]{0,119}")
_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def _to_run_name(value: Any) -> str:
    text = to_text(value)
    if text.casefold() in {n.casefold() for n in RESERVED_RUN_NAMES}:
        raise fail("{got} is a name the experiment's top level already uses ({names}); choose another run name",
                   got=shown(value), names=", ".join(sorted(RESERVED_RUN_NAMES)))
    if not _RUN_NAME.fullmatch(text):
        raise fail(
            "{got} is not safe as a directory name (use letters, digits and . _ - + =; "
            "no spaces or '/', no leading '-' or '.', not 'logs' or 'eval', at most 120 characters)",
            got=shown(value),
        )
    return text


def _to_task_name(value: Any) -> str:
    text = to_text(value)
    if not _TASK_NAME.fullmatch(text):
        raise fail(
            "{got} is not a valid task name (an inspect task function name: letters, digits "
            "and '_', not starting with a digit)",
            got=shown(value),
        )
    return text


def to_path(value: Any) -> str:
    text = to_line(value)
    if any(part == ".." for part in PurePosixPath(text).parts):
        raise fail("must not contain '..', got {got}", got=shown(value))
    if "," in text:  # inspect splits -T/-M values at commas
        raise fail("must not contain ',' (inspect would split it into a list), got {got}", got=shown(value))
    return text


def _to_time(value: Any) -> str:
    # SLURM --time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    text = to_text(value).strip()
    if re.fullmatch(r"(\d+-)?\d+(:\d{2}){0,2}", text):
        return text
    raise fail("expected a SLURM time such as 04:00:00 or 1-00:00:00, got {got}", got=shown(value))


def _to_mem(value: Any) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if text and (m := re.fullmatch(r"(\d+)\s*([KMGT]?)B?", text, flags=re.IGNORECASE)):
        return m.group(1) + m.group(2).upper()  # 80GB and 80g are SLURM's 80G
    raise fail("expected a SLURM memory size such as 80G, got {got}", got=shown(value))


Number = Annotated[float, BeforeValidator(to_number)]
Int = Annotated[int, BeforeValidator(to_int)]
Bool = Annotated[bool, BeforeValidator(to_bool)]
Text = Annotated[str, BeforeValidator(to_text)]
Line = Annotated[str, BeforeValidator(to_line)]
Date = Annotated[dt.date, BeforeValidator(_to_date)]
RunName = Annotated[str, BeforeValidator(_to_run_name)]
TaskName = Annotated[str, BeforeValidator(_to_task_name)]
PathText = Annotated[str, BeforeValidator(to_path)]
SlurmTime = Annotated[str, BeforeValidator(_to_time)]
SlurmMem = Annotated[str, BeforeValidator(_to_mem)]


def _positive(value: int) -> int:
    if value < 1:
        raise fail("must be at least 1, got {got}", got=shown(value))
    return value


PosInt = Annotated[int, BeforeValidator(lambda v: _positive(to_int(v)))]


def str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise fail("expected a list, got {got}", got=shown(value))
    return [to_line(v) for v in value]


# --------------------------------------------------------------------------- hyperparameters
_TYPE_CONVERTERS = {"int": to_int, "float": lambda v: float(to_number(v)), "number": to_number, "bool": to_bool, "str": to_text, "list": str_list}


def _hyper_converter(name: str, spec: dict[str, Any]):
    convert = _TYPE_CONVERTERS[spec["type"]]
    aliases = facts.defaults().get("component_aliases", {}).get(name, {})

    def check(value: Any) -> Any:
        if value is None:
            if "default" in spec and spec["default"] is None:
                return None  # null is this one's default (max_steps_per_epoch: no cap)
            # a null would reach finetune.yaml as `lr: null` (or crash the plan): refused, by name
            raise fail("expected a value, got null (leave the field out to take its default)")
        value = convert(value)
        if "min" in spec and value < spec["min"]:
            raise fail("must be at least {min}, got {got}", min=spec["min"], got=shown(value))
        if spec.get("positive") and value <= 0:
            raise fail("must be greater than 0, got {got}", got=shown(value))
        if "choices" in spec and isinstance(value, list):
            bad = [v for v in value if v not in spec["choices"]]
            if bad or not value:
                raise fail("expected a non-empty list of {choices}, got {got}", choices=", ".join(spec["choices"]), got=shown(value))
        elif "choices" in spec and value not in spec["choices"]:
            raise fail("expected one of {choices}, got {got}", choices=", ".join(spec["choices"]), got=shown(value))
        if name == "prompt" and "{input}" not in value:
            raise fail("must contain the placeholder {input}, got {got}", got=shown(value))
        return aliases.get(value, value) if isinstance(value, str) else value

    return Annotated[Any, BeforeValidator(check)]


def hyper_type(name: str):
    """The checked type of one hyperparameter of the table (used for `variables` values too)."""
    return _hyper_converter(name, facts.hyperparameters()[name])


# --------------------------------------------------------------------------- #SBATCH values, settings
SBATCH_WORD = re.compile(r"[A-Za-z0-9_.,:@%+=/|&*-]+")  # one word of a #SBATCH value: no spaces, quotes, #


def _to_slurm_word(value: Any) -> str:
    """A value written after `#SBATCH --option=`: sbatch reads the rest of the line as options, so a
    space would add options of its own (`gpu --gres=gpu:8`)."""
    text = to_line(value).strip()
    if not SBATCH_WORD.fullmatch(text):
        raise fail("expected one word (letters, digits and . , : @ % + = / | & * _ -): it is written into "
                   "#SBATCH lines, where a space or quote would add options; got {got}", got=shown(value))
    return text


def optional(convert: Any) -> Any:
    """A setting that may be left unset: None or blank text is "" (not set), else `convert`."""
    def check(value: Any) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            return ""
        return convert(value)
    return check


SlurmWord = Annotated[str, BeforeValidator(_to_slurm_word)]
OptSlurmWord = Annotated[str, BeforeValidator(optional(_to_slurm_word))]


def no_space_path(value: Any) -> str:
    text = to_path(value)
    if any(c.isspace() for c in text):
        raise fail("must not contain spaces: it reaches #SBATCH --output lines, which SLURM splits at spaces; got {got}", got=shown(value))
    return text


OptLine = Annotated[str, BeforeValidator(optional(to_line))]
