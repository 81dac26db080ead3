"""Tiny stand-ins for real model directories, built on the spot (no downloads).

* ``make_tiny_hf_model(dest)``: a real, loadable Hugging Face causal LM (a one-layer Llama with a
  character-level tokenizer and a chat template) that inspect-ai's ``hf/`` provider can run on CPU
  in about a second.
* ``make_checkpoint_dir(dest, files)``: a model directory laid out like a downloaded Hugging Face
  repo (``config.json``, the weight files, the tokenizer files) in which every weight file is an
  empty stub but every tokenizer file is a real, tiny tokenizer of the right format (tiktoken for
  Llama 3, SentencePiece for Mistral, byte-level BPE vocab/merges for Qwen2.5), so torchtune's
  checkpointer and tokenizer builders can be instantiated from a generated ``finetune.yaml``.
"""

from __future__ import annotations

import base64
import io
import json
import string
from pathlib import Path

# What each bundled model's Hugging Face repository holds (the files a finetune.yaml refers to),
# written down here from the repositories themselves, independently of cruijff_gen's catalog.
# Tokenizer files map to the format of the file.
HF_REPO_FILES: dict[str, dict[str, object]] = {
    "Llama-3.2-1B-Instruct": {
        "weights": ["model.safetensors"],
        "tokenizer": {"original/tokenizer.model": "tiktoken"},
    },
    "Llama-3.2-3B-Instruct": {
        "weights": [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)],
        "tokenizer": {"original/tokenizer.model": "tiktoken"},
    },
    "Llama-3.1-8B-Instruct": {
        "weights": [f"model-0000{i}-of-00004.safetensors" for i in (1, 2, 3, 4)],
        "tokenizer": {"original/tokenizer.model": "tiktoken"},
    },
    "Llama-3.3-70B-Instruct": {
        "weights": [f"model-{i:05d}-of-00030.safetensors" for i in range(1, 31)],
        "tokenizer": {"original/tokenizer.model": "tiktoken"},
    },
    "Mistral-7B-Instruct-v0.1": {
        "weights": [f"pytorch_model-0000{i}-of-00002.bin" for i in (1, 2)]
        + [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)],
        "tokenizer": {"tokenizer.model": "sentencepiece"},
    },
    "Qwen2.5-3B-Instruct": {
        "weights": [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)],
        "tokenizer": {"vocab.json": "bpe-vocab", "merges.txt": "bpe-merges"},
    },
}

# Every character the test prompts use (tests/designs.py HOSTILE_PROMPT included).
CHARACTERS = string.printable + "üïé"


# --------------------------------------------------------------------------- torchtune side
def _tiktoken_file(path: Path) -> None:
    """A tiktoken BPE file with the 256 single bytes and no merges: encodes any text."""
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what byte-level BPE vocabularies are keyed by)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _sentencepiece_file(path: Path) -> None:
    import sentencepiece as spm  # a torchtune dependency

    model = io.BytesIO()
    corpus = ["Capitalize the following word", "cat dog cow", "You are terse.", CHARACTERS] * 8
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=400, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    path.write_bytes(model.getvalue())


def make_checkpoint_dir(dest: Path, weights: list[str], tokenizer: dict[str, str], family: str | None = None) -> Path:
    """Stub weights, the torchtune tokenizer files, and (given the family) the Hugging Face
    tokenizer with the family's chat template, as the downloaded repository has them."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in weights:
        (dest / name).write_bytes(b"")
    _torchtune_tokenizer_files(dest, tokenizer)
    if family is not None:
        hf_tokenizer(dest, family)
    (dest / "config.json").write_text("{}\n")
    return dest


def _torchtune_tokenizer_files(dest: Path, tokenizer: dict[str, str]) -> None:
    for name, kind in tokenizer.items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "tiktoken":
            _tiktoken_file(path)
        elif kind == "sentencepiece":
            _sentencepiece_file(path)
        elif kind == "bpe-vocab":
            path.write_text(json.dumps({c: b for b, c in _bytes_to_unicode().items()}))
        elif kind == "bpe-merges":
            path.write_text("#version: 0.2\n")
        else:
            raise ValueError(kind)


# --------------------------------------------------------------------------- inspect side
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def make_tiny_hf_model(dest: Path) -> Path:
    """A one-layer Llama (vocabulary: single characters) saved with save_pretrained."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for char in CHARACTERS:
        vocab.setdefault(char, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one token per character
    core.decoder = decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = transformers.LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


# --------------------------------------------------------------------------- the real chat formats
# The chat templates of the bundled models' Hugging Face repositories (tokenizer_config.json), as far
# as a conversation without tools goes, written here in our own Jinja from what those templates do:
#
# * Llama 3.2 Instruct (meta-llama/Llama-3.2-*-Instruct): `<|begin_of_text|>`, then ALWAYS a system
#   turn holding "Cutting Knowledge Date: December 2023\nToday Date: <date>\n\n" and the system
#   message (if any, trimmed); <date> is the template variable `date_string` if given, else
#   transformers' `strftime_now("%d %b %Y")` (today), else "26 Jul 2024". Every other message is
#   `<|start_header_id|>role<|end_header_id|>\n\n` + content|trim + `<|eot_id|>`; the generation
#   prompt opens an assistant header.
# * Llama 3.1 / 3.3 Instruct: the same, but <date> is `date_string` or "26 Jul 2024" (no clock).
# * Qwen2.5 Instruct: `<|im_start|>role\n` + content + `<|im_end|>\n` per message, untrimmed; with no
#   system message first, the default "You are Qwen, created by Alibaba Cloud. You are a helpful
#   assistant." system turn; no BOS.
# * Mistral-7B-Instruct-v0.1: `<s>`, then `[INST] ` + user + ` [/INST]` and assistant + `</s> `;
#   roles must alternate user/assistant and there is no system role (it raises); no generation
#   prompt (the prompt ends with ` [/INST]`).
#
# And their tokenizers (tokenizer.json) called on text with add_special_tokens left at its default,
# as inspect's hf provider does unless told otherwise: Llama 3's post-processor prepends
# `<|begin_of_text|>` (so a rendered chat gets a second one), Mistral's prepends `<s>`, Qwen's adds
# nothing.
LLAMA3_DATE_FROM_CLOCK = """\
{%- if date_string is not defined -%}
{%- if strftime_now is defined -%}{%- set date_string = strftime_now("%d %b %Y") -%}
{%- else -%}{%- set date_string = "26 Jul 2024" -%}{%- endif -%}
{%- endif -%}"""
LLAMA3_DATE_FIXED = """{%- if date_string is not defined -%}{%- set date_string = "26 Jul 2024" -%}{%- endif -%}"""
LLAMA3_BODY = """\
{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
{%- set system_text = messages[0]['content'] | trim -%}{%- set turns = messages[1:] -%}
{%- else -%}{%- set system_text = "" -%}{%- set turns = messages -%}{%- endif -%}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" -}}
{{- "Cutting Knowledge Date: December 2023\\n" + "Today Date: " + date_string + "\\n\\n" -}}
{{- system_text + "<|eot_id|>" -}}
{%- for turn in turns -%}
{{- "<|start_header_id|>" + turn['role'] + "<|end_header_id|>\\n\\n" + turn['content'] | trim + "<|eot_id|>" -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|start_header_id|>assistant<|end_header_id|>\\n\\n" -}}{%- endif -%}"""
LLAMA3_2_CHAT_TEMPLATE = LLAMA3_DATE_FROM_CLOCK + LLAMA3_BODY
LLAMA3_1_CHAT_TEMPLATE = LLAMA3_DATE_FIXED + LLAMA3_BODY
QWEN2_5_CHAT_TEMPLATE = """\
{%- if messages[0]['role'] != 'system' -%}
{{- "<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n" -}}
{%- endif -%}
{%- for m in messages -%}{{- "<|im_start|>" + m['role'] + "\\n" + m['content'] + "<|im_end|>\\n" -}}{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|im_start|>assistant\\n" -}}{%- endif -%}"""
MISTRAL_V0_1_CHAT_TEMPLATE = """\
{{- bos_token -}}
{%- for m in messages -%}
{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
{%- endif -%}
{%- if m['role'] == 'user' -%}{{- '[INST] ' + m['content'] + ' [/INST]' -}}
{%- elif m['role'] == 'assistant' -%}{{- m['content'] + eos_token + ' ' -}}
{%- else -%}{{- raise_exception('Only user and assistant roles are supported!') -}}{%- endif -%}
{%- endfor -%}"""

QWEN2_5_SPECIAL_TOKENS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}

# Which format each bundled model has (tests/test_chat_fidelity.py covers one model of each).
FAMILY = {
    "Llama-3.2-1B-Instruct": "llama3_2", "Llama-3.2-3B-Instruct": "llama3_2",
    "Llama-3.1-8B-Instruct": "llama3_1", "Llama-3.3-70B-Instruct": "llama3_1",
    "Mistral-7B-Instruct-v0.1": "mistral_v0_1", "Qwen2.5-3B-Instruct": "qwen2_5",
}


def _byte_level(vocab_extra: dict[str, int]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    vocab.update(vocab_extra)  # added below as special tokens: they keep these ids
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return core


def hf_tokenizer(dest: Path, family: str):
    """A tiny Hugging Face tokenizer of a model family (see above), saved into dest; returns it."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    if family in ("llama3_2", "llama3_1"):
        from torchtune.models.llama3._tokenizer import LLAMA3_SPECIAL_TOKENS

        core = _byte_level(LLAMA3_SPECIAL_TOKENS)
        bos = "<|begin_of_text|>"
        core.post_processor = processors.TemplateProcessing(  # what Llama 3's tokenizer.json does
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, LLAMA3_SPECIAL_TOKENS[bos])])
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=core, bos_token=bos, eos_token="<|eot_id|>",
            pad_token="<|finetune_right_pad_id|>", additional_special_tokens=sorted(LLAMA3_SPECIAL_TOKENS),
        )
        tokenizer.chat_template = LLAMA3_2_CHAT_TEMPLATE if family == "llama3_2" else LLAMA3_1_CHAT_TEMPLATE
    elif family == "qwen2_5":
        core = _byte_level(QWEN2_5_SPECIAL_TOKENS)
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
            additional_special_tokens=sorted(QWEN2_5_SPECIAL_TOKENS),
        )
        tokenizer.chat_template = QWEN2_5_CHAT_TEMPLATE
    elif family == "mistral_v0_1":
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3}
        for char in CHARACTERS:
            vocab.setdefault(char, len(vocab))
        core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        # SentencePiece's way: spaces become U+2581 and the text starts with one; then characters
        core.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first"),
            pre_tokenizers.Split("", behavior="isolated"),
        ])
        core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
        tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        tokenizer.chat_template = MISTRAL_V0_1_CHAT_TEMPLATE
    else:
        raise ValueError(family)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(dest)
    return tokenizer


def make_family_model(dest: Path, family: str) -> Path:
    """A tiny random model of a family's architecture, loadable by transformers (inspect's hf
    provider), with its Hugging Face tokenizer and the torchtune tokenizer files of the family."""
    import torch
    import transformers

    tokenizer = hf_tokenizer(dest, family)
    size = max(tokenizer.get_vocab().values()) + 1
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=2, max_position_embeddings=2048)
    if family.startswith("llama3"):
        config = transformers.LlamaConfig(vocab_size=size, tie_word_embeddings=True, **small)
        model_class, torchtune_files = transformers.LlamaForCausalLM, {"original/tokenizer.model": "tiktoken"}
    elif family == "qwen2_5":
        config = transformers.Qwen2Config(vocab_size=size, tie_word_embeddings=True, **small)
        model_class, torchtune_files = transformers.Qwen2ForCausalLM, {"vocab.json": "bpe-vocab", "merges.txt": "bpe-merges"}
    else:
        config = transformers.MistralConfig(vocab_size=size, **small)
        model_class, torchtune_files = transformers.MistralForCausalLM, {"tokenizer.model": "sentencepiece"}
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    torch.manual_seed(0)
    model_class(config).save_pretrained(dest)
    _torchtune_tokenizer_files(dest, torchtune_files)
    return dest


def make_tiny_llama3_2(dest: Path, arch: dict) -> Path:
    """A Llama-3.2-shaped model with random weights, laid out like its Hugging Face repository, so
    that both sides of an experiment really run on it: torchtune fine-tunes it (`model.safetensors`,
    `config.json`, the tiktoken `original/tokenizer.model` of llama3_tokenizer) and transformers /
    inspect's hf provider load it and every epoch torchtune writes from it (`tokenizer.json` with a
    chat template; the checkpointer copies these files into each epoch directory).

    `arch` holds the keyword arguments of torchtune's llama3_2 builders (vocab_size, num_layers,
    num_heads, num_kv_heads, embed_dim, max_seq_len, intermediate_dim, norm_eps, rope_base,
    scale_factor): a catalog entry's `model` section, so the files match the model torchtune builds.
    vocab_size must hold Llama 3's special token ids (128256).
    """
    import torch
    import transformers
    from torchtune.models.llama3._tokenizer import SPECIAL_TOKENS

    eos = [SPECIAL_TOKENS[t] for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")]
    assert arch["vocab_size"] > max(eos), "vocab_size must hold Llama 3's special tokens (128256)"
    config = transformers.LlamaConfig.from_dict({  # the fields of Llama-3.2-1B's config.json
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": arch["vocab_size"],
        "hidden_size": arch["embed_dim"],
        "intermediate_size": arch["intermediate_dim"],
        "num_hidden_layers": arch["num_layers"],
        "num_attention_heads": arch["num_heads"],
        "num_key_value_heads": arch["num_kv_heads"],
        "head_dim": arch["embed_dim"] // arch["num_heads"],
        # Llama 3.2's value; torchtune's max_seq_len only sizes torchtune's RoPE cache
        "max_position_embeddings": max(arch["max_seq_len"], 131072),
        "rms_norm_eps": arch.get("norm_eps", 1e-5),
        "rope_theta": float(arch.get("rope_base", 500_000)),
        # torchtune's Llama3ScaledRoPE: old_context_len 8192, low/high frequency factors 1 and 4
        "rope_scaling": {"rope_type": "llama3", "factor": float(arch.get("scale_factor", 32)), "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "bos_token_id": SPECIAL_TOKENS["<|begin_of_text|>"],
        "eos_token_id": eos,
        "torch_dtype": "float32",
    })
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)  # model.safetensors (tied: no lm_head), config.json, generation_config.json
    hf_tokenizer(dest, "llama3_2")
    (dest / "original").mkdir(exist_ok=True)
    _tiktoken_file(dest / "original" / "tokenizer.model")
    return dest
