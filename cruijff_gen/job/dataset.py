"""The torchtune dataset every generated finetune.yaml names: examples rendered through the text
the eval cells send (cruijff_gen.job.chat), loss on the answer only.

    dataset:
      _component_: cruijff_gen.job.dataset.prompt_dataset
      source: json                      # passed to datasets.load_dataset, as torchtune's datasets do
      data_files: /data/words.json
      field: train
      split: train
      model_dir: /models/Llama-3.2-1B-Instruct   # its Hugging Face tokenizer and chat template
      dataset_type: chat_completion     # or text_completion
      system_prompt: ""
      prompt: "Capitalize: {input}"
      column_map: {input: input, output: output}
      train_on_input: false
      packed: false

torchtune's recipes call `config.instantiate(cfg.dataset, tokenizer)`: the torchtune tokenizer is
used for its `max_seq_len` (examples are truncated to it) and pad id (the recipe pads with it);
the text is encoded by the model's Hugging Face tokenizer, the one inspect loads at eval, so the
token ids are the ones evaluation feeds the model.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from . import chat

COLUMNS = ("input", "output")


class PromptDataset(Dataset):
    """Records of a data file as {"tokens", "labels"} (what torchtune's SFT collate expects)."""

    def __init__(self, records: Any, hf_tokenizer: Any, *, dataset_type: str, system_prompt: str | None,
                 prompt: str | None, column_map: dict[str, str], train_on_input: bool, max_seq_len: int | None):
        missing = [column_map[c] for c in COLUMNS if column_map[c] not in records.column_names]
        if missing:
            raise chat.ChatError(
                f"the data has no column {', '.join(map(repr, missing))} (it has {', '.join(records.column_names)}); "
                "name the columns with data.training.column_map"
            )
        self._records = records
        self._tokenizer = hf_tokenizer
        self._template = chat.template(hf_tokenizer, dataset_type)
        self._system_prompt, self._prompt = system_prompt, prompt
        self._columns = column_map
        self._train_on_input = train_on_input
        self._max_seq_len = max_seq_len

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        record = self._records[index]
        conversation = chat.messages(self._system_prompt, self._prompt, str(record[self._columns["input"]]))
        tokens, labels = chat.example_tokens(
            self._tokenizer, self._template, conversation, str(record[self._columns["output"]]),
            train_on_input=self._train_on_input,
        )
        if self._max_seq_len is not None:  # as torchtune's tokenizers truncate
            tokens, labels = tokens[: self._max_seq_len], labels[: self._max_seq_len]
            if all(label == chat.IGNORE_INDEX for label in labels):  # torchtune would train on 0/0 = nan
                raise chat.ChatError(
                    f"record {index}: its prompt alone is {len(tokens)}+ tokens, max_seq_len is {self._max_seq_len}: "
                    "nothing of its answer would be trained (the loss would be nan); raise max_seq_len in the design"
                )
        return {"tokens": tokens, "labels": labels}


def prompt_dataset(
    tokenizer: Any,
    *,
    source: str,
    model_dir: str,
    dataset_type: str = "chat_completion",
    system_prompt: str | None = None,
    prompt: str | None = None,
    column_map: dict[str, str] | None = None,
    train_on_input: bool = False,
    packed: bool = False,
    split: str = "train",
    **load_dataset_kwargs: Any,
) -> Dataset:
    """Build the dataset (see the module docstring); `packed` packs examples as torchtune does."""
    from datasets import load_dataset

    columns = {c: c for c in COLUMNS}
    columns.update(column_map or {})
    records = load_dataset(source, split=split, **load_dataset_kwargs)
    max_seq_len = getattr(tokenizer, "max_seq_len", None)
    ds = PromptDataset(
        records, chat.load_tokenizer(model_dir), dataset_type=dataset_type, system_prompt=system_prompt,
        prompt=prompt, column_map=columns, train_on_input=train_on_input, max_seq_len=max_seq_len,
    )
    if packed:
        from torchtune.datasets import PackedDataset

        if max_seq_len is None:
            raise chat.ChatError("packed: true needs tokenizer.max_seq_len in finetune.yaml")
        return PackedDataset(ds, max_seq_len=max_seq_len, padding_idx=tokenizer.pad_id)
    return ds
