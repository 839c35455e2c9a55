"""`quail run`: the study, read top to bottom.

data -> base model -> for each method: unlearn -> analyze against the original -> evaluate at
every precision -> results.json, results.md, plots, report.html. The data and the original
come from the source the config names (sources.py: built-in, countries, a folder, files).

Every finished piece (a "cell": an unlearned model, one evaluation, one analysis) is a file
under OUT/cells/, written atomically; a rerun skips what exists, so an interrupted study
resumes where it stopped, and a method or spec added to the config costs only its own cells.

Under `accelerate launch` with several processes, every process unlearns (the loop shards each
batch across them) and the main process does the rest: the others wait, then find its files
and read them, as a resumed run would.
"""

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import yaml
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env

from quail.data.load import file_sha256
from quail.environment import environment
from quail.errors import QuailError
from quail.io import atomic_write_json
from quail.study.config import StudyConfig, study_config, unlearn_settings
from quail.study.sources import SOURCES, original_dir, original_model, source_name

SCHEMA_VERSION = 1


def run_study(
    config: StudyConfig,
    out,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    verify: bool = True,
) -> dict:
    """Run (or resume) the study into `out`; return the results.json content. `verify` checks
    a given data folder against its manifest (quail.data.verify_data_folder)."""
    out = Path(out)
    # one process evaluates while the others wait: allow it hours, not the default minutes;
    # CPU processes (ACCELERATE_USE_CPU, as accelerate's own state reads it) form a gloo group
    state = PartialState(parse_flag_from_env("ACCELERATE_USE_CPU"), timeout=timedelta(hours=12))
    if not state.is_main_process:
        log = _silent
    _check_inputs(config, verify)
    _warn_lr(config, log)
    with state.main_process_first():
        if state.is_main_process:
            _claim_output(config, out, overwrite)
        data_dir = _data(config, out, log)
        _same_data(config, data_dir, out)
        base_dir = original_model(config, data_dir, out, log)
        prompts = _prompts(config, base_dir, out, log)
        eval_data = _eval_data(config, data_dir, prompts, log)
        original = _evaluations(base_dir, eval_data, config.specs, out / "cells" / "original", log)
    methods = {}
    for run in config.methods:
        cell = out / "cells" / run.name
        _same_data(config, data_dir, out)
        model_dir = _unlearned(config, run, base_dir, data_dir, prompts, cell, log)  # all
        with state.main_process_first():
            metrics = _evaluations(model_dir, eval_data, config.specs, cell, log)
            analysis = {
                s: _analysis(base_dir, model_dir, s, cell, log) for s in config.analysis_specs
            }
        methods[run.name] = _method_result(run, original, metrics, analysis, model_dir)
    retrain = None
    if config.retrain:
        with state.main_process_first():
            retrain_dir = _retrained(data_dir, out, log)
            retrain = _evaluations(retrain_dir, eval_data, ["fp"], out / "cells" / "retrain", log)
        _add_privleak([original, *(m["metrics"] for m in methods.values())], retrain["fp"])
    results = _results(config, data_dir, base_dir, original, methods, retrain)
    if state.is_main_process:
        atomic_write_json(out / "results.json", results)
        from quail.report import write_report

        write_report(results, out)
        log(f"wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'report.html'}")
    state.wait_for_everyone()
    return results


def report_study(out) -> dict:
    """The report of a study folder from the cells written so far, computing nothing: a study
    stopped by a time limit (or still running) can be read before it is resumed. Unfinished
    cells are listed under `missing` and shown as "–"; a method without its fp evaluation is
    left out. Writes results.md, plots and report.html (the finished study overwrites them),
    not results.json, which stays the record of a finished study."""
    out = Path(out)
    record = out / "study.json"
    if not record.is_file():
        raise QuailError(f"{out} holds no study (no study.json): check the path")
    config = study_config(json.loads(record.read_text("utf-8")))
    missing: list[str] = []
    original = _finished(out, "original", "eval", config.specs, missing)
    if "fp" not in original:
        raise QuailError(f"{out}: the original's fp evaluation is not written yet; report later")
    methods = {}
    for run in config.methods:
        metrics = _finished(out, run.name, "eval", config.specs, missing)
        analysis = _finished(out, run.name, "analysis", config.analysis_specs, missing)
        model_dir = out / "cells" / run.name / "model"
        if "fp" in metrics:
            methods[run.name] = _method_result(run, original, metrics, analysis, model_dir)
    retrain = _finished(out, "retrain", "eval", ["fp"] if config.retrain else [], missing)
    if retrain:
        _add_privleak([original, *(m["metrics"] for m in methods.values())], retrain["fp"])
    base = original_dir(config, out) or config.base  # else a model folder or a packaged name
    data_dir = SOURCES[source_name(config)].folder(config, out)
    results = _results(config, data_dir, base, original, methods, retrain or None)
    del results["environment"]  # this machine's, not the one that computed the cells
    results["missing"] = missing
    from quail.report import write_report

    write_report(results, out)
    return results


def _cell_file(cell: Path, kind: str, spec: str) -> Path:
    """A cell's result file: KIND (eval, analysis) of the cell's model under SPEC."""
    return cell / f"{kind}-{spec}.json"


def _finished(out: Path, name: str, kind: str, specs: list[str], missing: list[str]) -> dict:
    """{spec: content} of the cell files cells/NAME/KIND-SPEC.json that exist; the others are
    added to `missing` (as paths relative to the study folder)."""
    found = {}
    for spec in specs:
        path = _cell_file(Path("cells") / name, kind, spec)
        if (out / path).is_file():
            found[spec] = json.loads((out / path).read_text("utf-8"))
        else:
            missing.append(str(path))
    return found


def _method_result(run, original: dict, metrics: dict, analysis: dict, model_dir: Path) -> dict:
    return {
        "method": run.method,
        "overrides": run.overrides,
        "metrics": metrics,
        "recovery": _recoveries(original, metrics),
        "analysis": analysis,
        "unlearn": _run_summary(model_dir),
    }


def _results(config: StudyConfig, data_dir, base_dir, original, methods, retrain) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": config.name,
        "data": str(data_dir) if data_dir else f"{config.forget}, {config.retain}",
        "base": str(base_dir),
        "specs": config.specs,
        "analysis_specs": config.analysis_specs,
        "headline_metric": config.headline_metric,
        "config": config.to_dict(),
        "config_yaml": yaml.safe_dump(config.to_dict(), sort_keys=False),
        "environment": environment(),
        "original": {"metrics": original},
        "retrain": None if retrain is None else {"metrics": retrain},
        "methods": methods,
    }


def _silent(line: str) -> None:
    """The log of processes other than the main one: it speaks for all."""


# what a rerun may change in a study folder: a spec added is evaluated for every model, a method
# added is run; what the methods are given (methods, unlearn, trace_every) is then checked one
# finished model at a time against what it was made with
RERUN_MAY_CHANGE = {
    "name", "specs", "analysis_specs", "headline_metric", "methods", "unlearn", "trace_every"
}  # fmt: skip


def _claim_output(config: StudyConfig, out: Path, overwrite: bool) -> None:
    """Resume only the same study, give or take methods and specs: their cells are computed,
    the rest reused; a change to what a finished cell was made with is an error."""
    record = out / "study.json"
    wanted = config.to_dict()
    if record.is_file() and not overwrite:
        recorded = StudyConfig().to_dict() | json.loads(record.read_text("utf-8"))  # keys added
        changed = [k for k in wanted if k not in RERUN_MAY_CHANGE and recorded[k] != wanted[k]]
        if changed:
            raise QuailError(
                f"{out} holds a study with a different {changed[0]}: use a new --out, or "
                "--overwrite"
            )
        for run in config.methods:
            _same_settings(config, run, out / "cells" / run.name)
        atomic_write_json(record, wanted)
        return
    if out.is_dir() and any(out.iterdir()) and not record.is_file() and not overwrite:
        raise QuailError(f"{out} is not empty and holds no study: choose another --out")
    if overwrite and out.is_dir():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, wanted)


def _same_settings(config: StudyConfig, run, cell: Path) -> None:
    """Refuse a method whose finished model was unlearned with other settings than the
    config now gives it (its overrides, or the shared ones, changed)."""
    from quail.unlearning.config import comparable, make_config

    made = cell / "model" / "run.json"
    if not made.is_file():
        return
    then = json.loads(made.read_text("utf-8"))["config"]
    now = comparable(make_config(unlearn_settings(config, run)))
    changed = [k for k in now if k in then and then[k] != now[k]]
    if changed:
        raise QuailError(
            f"method {run.name} was unlearned with {changed[0]}={then[changed[0]]!r}, the "
            f"config now gives {now[changed[0]]!r}: give the run a new name, or delete {cell}"
        )


def _qa_files(config: StudyConfig) -> bool:
    """The study asks the user's own question or text files as they are (no data folder)."""
    return source_name(config) == "files"


def _warn_lr(config: StudyConfig, log: Callable[[str], None]) -> None:
    """Say before any work which runs' lr cannot move their shipped model (a baseline's lr
    given to quail)."""
    from quail.unlearning.config import lr_warning, make_config

    for run in config.methods:
        if warning := lr_warning(make_config(unlearn_settings(config, run))):
            log(f"warning: {run.name}: {warning}")


def _check_inputs(config: StudyConfig, verify: bool) -> None:
    """The data source's inputs, a given model folder and what every spec needs installed,
    checked before the study folder is claimed (not in the config: `quail report` reads a
    study's config on machines that may lack them)."""
    from quail.quant import parse_spec
    from quail.quant.backends import check_installed
    from quail.zoo import ZOO

    for name in dict.fromkeys(config.specs + config.analysis_specs):
        check_installed(parse_spec(name))
    if config.tofu_reference and not (Path(config.tofu_reference) / "config.json").is_file():
        raise QuailError(
            f"tofu_reference {config.tofu_reference} is not a model folder (no config.json): "
            "give the folder of TOFU's retain model, or drop the key"
        )
    SOURCES[source_name(config)].check(config, verify)
    if config.base != "builtin" and config.base not in ZOO:
        from quail.models import check_model_dir

        check_model_dir(config.base)


def _same_data(config: StudyConfig, data_dir: Path | None, out: Path) -> None:
    """Refuse to go on with data that changed since the study began (mid-run, or between a
    stop and its resume): its cells would mix two data sets. The first call records it."""
    record = out / "data.sha256.json"
    files = [Path(f) for f in (config.forget, config.retain) if f] if data_dir is None else [
        p for p in sorted(data_dir.iterdir()) if p.is_file()]  # fmt: skip
    now = {p.name: file_sha256(p) for p in files}
    if not record.is_file():
        atomic_write_json(record, now)
        return
    then = json.loads(record.read_text("utf-8"))
    changed = sorted(name for name in then.keys() | now.keys() if then.get(name) != now.get(name))
    if changed:
        raise QuailError(
            f"{changed[0]} changed since this study began: restore it, or start over "
            "with --overwrite (or a new --out)"
        )


def _data(config: StudyConfig, out: Path, log) -> Path | None:
    """The study's data folder (None for the user's question files), written on first use."""
    source = SOURCES[source_name(config)]
    data_dir = source.folder(config, out)
    source.build(config, data_dir, log)
    return data_dir


def _retrained(data_dir: Path, out: Path, log) -> Path:
    """The built-in base trained on the retain entities only: the model unlearning should
    ideally become, and MUSE's reference for PrivLeak."""
    retrain_dir = out / "retrain"
    if not (retrain_dir / "config.json").is_file():
        from quail.base import BASE_CONFIG, write_base_model

        log("getting the retrained reference (base without the forget set; cached)")
        config = BASE_CONFIG.replace(train_forget=False)
        write_base_model(data_dir, retrain_dir, "knowledge", log=log, config=config)
    return retrain_dir


def _add_privleak(metric_tables: list[dict], retrain_fp: dict) -> None:
    """PrivLeak = (AUC − AUC_retrain) / AUC_retrain × 100 beside every Min-K% AUC."""
    from quail.evaluation.metrics import privleak

    for table in metric_tables:
        for scores in table.values():
            if "mia_auc" in scores and "mia_auc" in retrain_fp:
                scores["privleak"] = privleak(scores["mia_auc"], retrain_fp["mia_auc"])


def _prompts(config: StudyConfig, base_dir: Path, out: Path, log):
    """How the user's question,answer records are asked: `question_format`, or, for auto, the
    form the original answers its own retain questions best in, chosen once and recorded in
    prompts.json, so every model of the study is asked alike (quail.data.files)."""
    if not _qa_files(config):
        return None
    from quail.data.files import choose_form, prompts_for
    from quail.models import load_model, load_tokenizer

    tokenizer, form, record = load_tokenizer(base_dir), config.question_format, out / "prompts.json"
    if form == "auto" and record.is_file():
        form = json.loads(record.read_text("utf-8"))["form"]
    elif form == "auto" and config.retain:
        original = load_model(base_dir, dtype="float32")
        form, scores = choose_form(original, tokenizer, config.retain)
        log(f"questions asked {form} (the original's retain KnowMem by form: {scores})")
        atomic_write_json(record, {"form": form, "retain_knowmem": scores})
    return prompts_for("plain" if form == "auto" else form, config.retain, tokenizer)


def _eval_data(config: StudyConfig, data_dir: Path | None, prompts, log):
    from quail.evaluation import load_eval_data, load_file_eval_data
    from quail.evaluation.tofu import NO_REFERENCE, reference_ratios

    if _qa_files(config):
        data = load_file_eval_data(
            config.forget,
            config.retain,
            prompts.tokenizer,
            config.eval_limit,
            config.data_seed,
            prompts,
        )
    else:
        data = load_eval_data(data_dir, config.task, config.eval_limit, config.data_seed)
    if config.tofu_reference is not None:
        data.tofu_reference = reference_ratios(config.tofu_reference, data.tofu)
    elif data.tofu:
        log(NO_REFERENCE)
    return data


def _evaluations(model_dir: Path, eval_data, specs: list[str], cell: Path, log) -> dict:
    """{spec: metrics}, read from finished cells; the model is loaded once, and only if some
    spec still needs evaluating."""
    from quail.evaluation import evaluate, fp_reference
    from quail.models import load_model, load_tokenizer

    results, model, tokenizer, reference = {}, None, None, None
    for spec in specs:
        path = _cell_file(cell, "eval", spec)
        if not path.is_file():
            if model is None:
                model, tokenizer = load_model(model_dir, dtype="float32"), load_tokenizer(model_dir)
                reference = fp_reference(model, tokenizer, eval_data)  # computed once, if asked
            log(f"evaluating {cell.name} under {spec}")
            scores = evaluate(model, eval_data, [spec], tokenizer, reference=reference)[spec]
            atomic_write_json(path, scores)
        results[spec] = json.loads(path.read_text("utf-8"))  # as a resumed run reads it
    return results


def _analysis(base_dir: Path, model_dir: Path, spec: str, cell: Path, log) -> dict:
    path = _cell_file(cell, "analysis", spec)
    if path.is_file():
        return json.loads(path.read_text("utf-8"))
    from quail.analysis import analyze

    log(f"analysing {cell.name} against the original under {spec}")
    result = analyze(base_dir, model_dir, spec).to_dict()
    atomic_write_json(path, result)
    return result


def _unlearned(config: StudyConfig, run, base_dir: Path, data_dir, prompts, cell: Path, log):
    model_dir = cell / "model"
    if (model_dir / "config.json").is_file():
        return model_dir
    from quail.data import load_claim_sets, load_unlearning_sets, load_unseen
    from quail.unlearning import make_config, unlearn
    from quail.unlearning.config import measured

    if _qa_files(config):
        from quail.data.files import load_file_sets

        forget, retain = load_file_sets(config.forget, config.retain, prompts.tokenizer, prompts)
    else:
        load = load_unlearning_sets if config.task == "knowledge" else load_claim_sets
        forget, retain = load(data_dir)
    settings = make_config(unlearn_settings(config, run))
    holdout = None  # what the original never trained on sets a measured run's aims; a
    # traced run (target 0, config.unlearn_settings) checks without stopping, so gets none
    if data_dir is not None and measured(settings) and settings.target > 0:
        holdout = load_unseen(data_dir, config.task) or None
    log(f"unlearning with {run.name} ({run.method})")
    cell.mkdir(parents=True, exist_ok=True)
    unlearn(base_dir, forget, retain, settings, out=model_dir, holdout=holdout)
    return model_dir


def _recoveries(original: dict, metrics: dict) -> dict:
    """{spec: {forget metric: recovery}}, undefined where the original itself loses the
    knowledge under the spec (then nothing can come back)."""
    from quail.evaluation import recovery

    table = {}
    for spec, scores in metrics.items():
        if spec == "fp":
            continue
        table[spec] = {
            name: recovery(
                original["fp"][name],
                metrics["fp"][name],
                scores[name],
                original_quantized=original.get(spec, {}).get(name),
            ).to_dict()
            for name in scores
            if name in original["fp"] and _is_forget_metric(name)
        }
    return table


def _is_forget_metric(name: str) -> bool:
    """Metrics where lower means more forgotten (MIA AUC is not one: 0.5 is the target)."""
    return name.endswith(("_forget", "_forget_para"))


def _run_summary(model_dir: Path) -> dict:
    """What the report shows of a run: its time, settings, and the checks a measured (or
    traced) run made on its way (the frontier plot's points)."""
    run = json.loads((model_dir / "run.json").read_text("utf-8"))
    stop = run.get("stop") or {}
    return {
        "wall_time_s": run.get("wall_time_s"),
        "config": run.get("config"),
        "stop_statement": run.get("stop_statement"),
        "checks": stop.get("checks", []),
    }
