"""cruijff_gen's inspect-ai extensions, registered when inspect loads the entry points of group
`inspect_ai` (pyproject.toml: `cruijff_gen = "cruijff_gen.job._inspect_registry"`;
inspect_ai/_util/entrypoints.py imports this module).

Kept light: inspect imports it whenever it looks for any provider, so torch and transformers are
imported only when a `cruijff-hf/...` model is actually made (the pattern of inspect's own
providers, inspect_ai/model/_providers/providers.py).
"""

from __future__ import annotations

from inspect_ai.model import ModelAPI, modelapi


@modelapi(name="cruijff-hf")
def cruijff_hf() -> type[ModelAPI]:
    """inspect's hf provider that also loads adapter-only checkpoints (cruijff_gen.job.inspect_model)."""
    from .inspect_model import CruijffHuggingFaceAPI

    return CruijffHuggingFaceAPI
