"""Fields a design gives that no stage reads. A key of `controls` or of a run's `parameters` that is
no hyperparameter is refused as a typo (with the nearest name); any other field the schema does not
know, and a top-level key that is neither a design section, a cluster setting nor Copier's own, is
reported as unused.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel

from . import facts
from .errors import Problem
from .experiment_dir import DESIGN_SECTIONS
from .schema import SETTINGS_KEYS, Design


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


_PLAIN_KEY = re.compile(r"[^\s.\[\]:]+")


def unknown_hyperparameters(design: Design) -> list[Problem]:
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


def unused_fields(model: BaseModel, path: str = "") -> list[str]:
    """Paths of fields a design gave that no stage consumes."""
    found: list[str] = []
    for key in sorted((model.model_extra or {}).keys()):
        found.append(f"{path}.{key}" if path else str(key))
    for name in type(model).model_fields:
        value = getattr(model, name)
        sub = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            found += unused_fields(value, sub)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += unused_fields(item, f"{sub}[{i}]")
    return found


def extra_keys(keys: Any) -> list[str]:
    """The top-level keys (of Copier's data: the summary's and --data's) that are neither design
    sections, cluster settings nor Copier's own (`_...`): nothing reads them."""
    return [k for k in keys if k not in DESIGN_SECTIONS and k not in SETTINGS_KEYS and not k.startswith("_")]
