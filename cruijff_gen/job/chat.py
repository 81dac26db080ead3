"""The one definition of the text a model is trained on and evaluated with.

Training (cruijff_gen.job.dataset) and evaluation (inspect's `hf/` provider, through the model
settings file `python -m cruijff_gen.job check-eval` writes) both go through this module, so the
prompt a fine-tuned model learns is, token for token, the prompt its eval cells send:

* the messages: the system prompt (only when non-empty) and the user turn, the design's `prompt`
  with the record's input in place of `{input}` (`messages`); an inspect task builds the same
  messages from the cell's settings file (README: the task contract);
* the template: `chat_completion` renders them through the model's own Hugging Face chat template
  (the one inspect's hf provider applies: `tokenizer.chat_template`); `text_completion` through
  PLAIN_TEMPLATE (the texts one after another, no role markers);
* the date: Llama 3.x templates write `Today Date: <date>` into their system turn, taken from the
  template variable `date_string` or, in Llama 3.2's template, from today's clock. The templates
  here set `date_string` to PINNED_DATE first, so a model trained on Monday and evaluated on
  Friday sees one text. PINNED_DATE is the templates' own fallback (and the date the Llama 3.1 /
  3.3 templates always use);
* the tokens: the rendered prompt is tokenized with add_special_tokens=False (what transformers'
  own `apply_chat_template(tokenize=True)` does: the template already wrote BOS; inspect's hf
  provider is told the same through `tokenizer_call_args`), so no model gets a second BOS.

Imports only transformers (lazily); nothing from the scaffolding side of cruijff_gen.
"""

from __future__ import annotations

from typing import Any

PINNED_DATE = "26 Jul 2024"
DATE_VARIABLES = ("date_string", "strftime_now")
DATE_PIN = '{%- set date_string = "' + PINNED_DATE + '" %}'

# text_completion: the message texts one after another; a trained answer ends with EOS.
PLAIN_TEMPLATE = (
    "{{ bos_token or '' }}{% for message in messages %}{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token or '' }}{% endif %}{% endfor %}"
)

# What inspect's hf provider must be told (in the model settings file) so it tokenizes as training does.
TOKENIZER_CALL_ARGS = {"add_special_tokens": False}

DATASET_TYPES = ("chat_completion", "text_completion")


class ChatError(ValueError):
    """The model directory or the data cannot give the text the design asks for (one line)."""


def messages(system_prompt: str | None, prompt: str | None, text: str) -> list[dict[str, str]]:
    """The messages of one example: a system turn only when the system prompt is non-empty, then
    the user turn (`prompt` with `text` in place of its first `{input}`; no prompt: the text)."""
    out = []
    if system_prompt:
        out.append({"role": "system", "content": system_prompt})
    if prompt is None:
        user = text
    else:
        before, sep, after = prompt.partition("{input}")
        user = before + text + after if sep else prompt + text
    out.append({"role": "user", "content": user})
    return out


def template(tokenizer: Any, dataset_type: str) -> str:
    """The chat template both sides render with: the model's own (date pinned) or PLAIN_TEMPLATE."""
    if dataset_type == "text_completion":
        return PLAIN_TEMPLATE
    if dataset_type != "chat_completion":
        raise ChatError(f"dataset_type: expected one of {', '.join(DATASET_TYPES)}, got {dataset_type!r}")
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates: the default one is what inspect applies
        own = own.get("default")
    if not own:
        name = getattr(tokenizer, "name_or_path", "") or "the model directory"
        raise ChatError(
            f"{name}: the tokenizer has no chat template (tokenizer_config.json / chat_template.jinja), "
            "so chat_completion cannot train on the text inspect sends; use a model directory with its "
            "Hugging Face tokenizer files, or dataset_type: text_completion"
        )
    return pin_date(own)


def pin_date(chat_template: str) -> str:
    """The template with `date_string` set to PINNED_DATE before anything reads it (templates that
    never mention a date are returned unchanged)."""
    if any(v in chat_template for v in DATE_VARIABLES) and not chat_template.startswith(DATE_PIN):
        return DATE_PIN + chat_template
    return chat_template


def render(tokenizer: Any, chat_template: str, conversation: list[dict[str, str]], *, generation_prompt: bool) -> str:
    """The conversation as text, rendered by transformers the way inspect's hf provider calls it."""
    return tokenizer.apply_chat_template(
        conversation, chat_template=chat_template, tokenize=False, add_generation_prompt=generation_prompt,
        tools=None, enable_thinking=None,  # what inspect passes when a task gives no tools / model args
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Text -> token ids the way the eval side tokenizes its prompt (inspect's hf provider calls the
    tokenizer on the rendered text with TOKENIZER_CALL_ARGS)."""
    return list(tokenizer(text, **TOKENIZER_CALL_ARGS)["input_ids"])


def example_tokens(tokenizer: Any, chat_template: str, conversation: list[dict[str, str]], response: str,
                   *, train_on_input: bool) -> tuple[list[int], list[int]]:
    """(tokens, labels) of one training example. The prompt tokens are exactly what evaluation
    feeds the model; the response is what the template appends for an assistant turn (its end of
    turn marker included); labels are -100 (ignored by the loss) outside the response unless
    train_on_input."""
    prompt = render(tokenizer, chat_template, conversation, generation_prompt=True)
    full = render(tokenizer, chat_template, conversation + [{"role": "assistant", "content": response}], generation_prompt=False)
    if not full.startswith(prompt):
        raise ChatError(
            "the chat template renders an answered conversation that does not start with the unanswered prompt "
            f"({prompt[-60:]!r} vs {full[:len(prompt)][-60:]!r}); training and evaluation could not share a prompt"
        )
    prompt_ids = encode(tokenizer, prompt)
    answer = _without_trailing_space(tokenizer, full[len(prompt):])
    full_ids = encode(tokenizer, prompt + answer)
    if full_ids[: len(prompt_ids)] == prompt_ids:
        answer_ids = full_ids[len(prompt_ids):]  # the answer as the model would continue the prompt
    else:  # the tokenizer merges across the boundary: keep the prompt exactly as evaluation sends it
        answer_ids = encode(tokenizer, answer)
    labels = list(prompt_ids) if train_on_input else [IGNORE_INDEX] * len(prompt_ids)
    return prompt_ids + answer_ids, labels + answer_ids


IGNORE_INDEX = -100  # torchtune's CROSS_ENTROPY_IGNORE_IDX (torchtune/data/_common.py)


def _without_trailing_space(tokenizer: Any, answer: str) -> str:
    """Whitespace a template writes after the end-of-turn token (Mistral v0.1: `</s> `) is not part
    of any answer the model should learn."""
    stripped = answer.rstrip()
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t]
    return stripped if stripped != answer and any(stripped.endswith(t) for t in specials) else answer


def load_tokenizer(model_dir: str) -> Any:
    """The Hugging Face tokenizer of a model directory, loaded as inspect's hf provider loads it."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise ChatError(f"{model_dir}: no Hugging Face tokenizer could be loaded ({str(exc).splitlines()[0]})") from None


def model_settings(tokenizer: Any, dataset_type: str) -> dict[str, Any]:
    """inspect hf provider model arguments that make evaluation render and tokenize as training did
    (written to the file `inspect eval --model-config` reads)."""
    return {"chat_template": template(tokenizer, dataset_type), "tokenizer_call_args": dict(TOKENIZER_CALL_ARGS)}
