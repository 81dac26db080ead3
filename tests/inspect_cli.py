"""Run several `inspect ...` command lines through inspect-ai's own CLI in one Python process.

    python inspect_cli.py ARGVS.json RESULTS.json [INPUTS.json]

ARGVS.json is a list of argv lists, each starting with "inspect". Each one is handed to the click
command group behind the `inspect` executable (the same object its entry point calls), so option
parsing and the evaluation are the real ones; only the interpreter start-up and the import of
torch/transformers are shared, which saves ~10 s per command. RESULTS.json receives, per argv, the
exit code (0 = the CLI returned normally), the error text if it raised, and the seconds it took.
INPUTS.json (optional) receives, per argv, the token ids of every prompt inspect's hf provider
handed to the model's `generate` (left padding removed): transformers' generate is wrapped to
record its `input_ids`, and otherwise runs unchanged.

One more change, to inspect's waiting only: its hf provider collects the requests of a batch until
none has come for 2 s (inspect_ai/model/_providers/hf.py, process_batches) and each waiting sample
looks for its result once a second; on these tiny models that idle wait was ~3 s of each cell's
3.3 s. Here the batch closes after BATCH_WAIT seconds without a request and samples look every
BATCH_WAIT seconds: the same requests, prompts and generation; less sleeping.
"""

from __future__ import annotations

import json
import sys
import time
import traceback


def record_generate_inputs(sink: list) -> None:
    from transformers.generation.utils import GenerationMixin

    real = GenerationMixin.generate

    def generate(self, *args, **kwargs):
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        for row, keep in zip(ids.tolist(), mask.tolist()):
            sink[-1].append([t for t, k in zip(row, keep) if k])
        return real(self, *args, **kwargs)

    GenerationMixin.generate = generate


BATCH_WAIT = 0.05  # seconds (inspect: 2 to close a batch, 1 between looks)


def shorten_batch_wait() -> None:
    import anyio
    from inspect_ai.model._providers import hf

    drain = hf._drain_batches

    def drain_sooner(queue, timeout: float):
        return drain(queue, timeout=min(timeout, BATCH_WAIT))

    class SoonerAnyio:  # hf.py's `anyio` name: anyio itself, but its sleeps last BATCH_WAIT at most
        def __getattr__(self, name: str):
            return getattr(anyio, name)

        @staticmethod
        async def sleep(seconds: float) -> None:
            await anyio.sleep(min(seconds, BATCH_WAIT))

    hf._drain_batches = drain_sooner
    hf.anyio = SoonerAnyio()


def main() -> None:
    argvs_file, results_file = sys.argv[1:3]
    inputs_file = sys.argv[3] if len(sys.argv) > 3 else None
    from inspect_ai._cli.main import inspect
    from inspect_ai._util.dotenv import init_dotenv

    inputs: list[list[list[int]]] = []
    if inputs_file:
        record_generate_inputs(inputs)
    shorten_batch_wait()

    init_dotenv()
    results = []
    for argv in json.loads(open(argvs_file, encoding="utf-8").read()):
        assert argv[0] == "inspect", argv
        inputs.append([])
        started = time.monotonic()
        error = ""
        try:
            inspect.main(args=argv[1:], prog_name="inspect", auto_envvar_prefix="INSPECT", standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - report, and go on with the next command
            code, error = 1, traceback.format_exc()
        results.append({"argv": argv, "code": code, "error": error, "seconds": time.monotonic() - started})
    with open(results_file, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    if inputs_file:
        with open(inputs_file, "w", encoding="utf-8") as out:
            json.dump(inputs, out)


if __name__ == "__main__":
    main()
