"""A study's configuration: a typed dataclass from YAML, overridable by `key=value`.

Example (the demo's own, src/quail/study/demo.yaml, is one)::

    name: builtin-demo
    data: builtin          # a data folder, or builtin (quail data build)
    base: builtin          # a model folder, or builtin (quail base)
    specs: [fp, int8, int4]
    unlearn: {steps: 40, lr: 1e-4}          # shared by every method
    methods:
      - ga_gdr                              # a registry name...
      - {name: quail, method: quail, overrides: {gamma: 10}}   # ...or a labelled variant
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from quail.errors import QuailError
from quail.evaluation.suite import FORGET_METRICS
from quail.quant import parse_spec
from quail.settings import build, read_yaml, with_overrides
from quail.unlearning.methods import METHODS


@dataclass
class MethodRun:
    name: str  # the row label in the results table
    method: str  # a name in quail.unlearning.METHODS
    overrides: dict = field(default_factory=dict)  # UnlearnConfig fields for this run only


@dataclass
class StudyConfig:
    name: str = "study"
    data: str = "builtin"
    forget: str | None = None  # or the user's own files instead of a data folder (docs/DATA.md)
    retain: str | None = None
    test: str | None = None  # claims task: held-out text,label records
    question_format: str = "auto"  # how their question,answer records are asked
    data_size: str = "default"
    data_seed: int = 0
    base: str = "builtin"
    task: str = "knowledge"  # knowledge (QA + passages) or claims
    specs: list[str] = field(default_factory=lambda: ["fp", "int8", "int4"])
    analysis_specs: list[str] | None = None  # default: every quantized spec in `specs`
    headline_metric: str | None = None  # default: knowmem_forget, or acc_claims_forget
    eval_limit: int | None = 200  # probes per set (a seeded sample), to bound the run time
    tofu_reference: str | None = None  # TOFU's retain model: tofu_forget_quality on its import
    # every N steps, each method's forgetting and utility on the analysis grid, without stopping
    # it: the report's frontier (forget in the shipped format against retain, budget by budget)
    trace_every: int = 0
    unlearn: dict = field(default_factory=dict)
    retrain: bool = False  # also train the built-in base without the forget set (PrivLeak)
    inject: dict = field(default_factory=dict)  # quail.countries.InjectConfig; {} = no injection
    methods: list[MethodRun] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _method(entry) -> MethodRun:
    if isinstance(entry, str):
        return MethodRun(entry, entry)
    if isinstance(entry, dict) and set(entry) <= {"name", "method", "overrides"}:
        method = entry.get("method", entry.get("name"))
        return MethodRun(entry.get("name", method), method, dict(entry.get("overrides") or {}))
    raise QuailError(
        f"bad methods entry {entry!r}: use a method name or {{name, method, overrides}}"
    )


def study_config(values: dict, overrides: list[str] = ()) -> StudyConfig:
    """Build and check a StudyConfig from a mapping plus `key=value` overrides (`unlearn.key=`
    and `inject.key=` set one entry of those mappings)."""
    values = with_overrides(values, overrides, nested=("unlearn", "inject"))
    if values.get("methods", []) is None:
        values["methods"] = []  # an empty `methods:` line: _validate says what to write
    if isinstance(values.get("methods"), str):  # methods=ga_gdr,quail on the command line
        values["methods"] = [m.strip() for m in values["methods"].split(",") if m.strip()]
    config = build(StudyConfig, values, "study config key")
    config.methods = [_method(m) for m in config.methods]
    _validate(config)
    return config


def load_study_config(path, overrides: list[str] = ()) -> StudyConfig:
    path = Path(path)
    values = read_yaml(path, "study config")
    for key in ("data", "base", "forget", "retain", "test", "tofu_reference"):  # beside the file
        if isinstance(values.get(key), str):
            values[key] = _beside(path.parent, values[key])
    return study_config(values, overrides)


def _beside(folder: Path, value: str) -> str:
    """`value` as a path relative to `folder` where it names a folder there or has a slash;
    names (builtin, countries, a packaged model) stay as they are."""
    value = str(Path(value).expanduser()) if value.startswith("~") else value
    if "/" in value or (folder / value).exists():
        return str((folder / value).absolute())  # an absolute value stays itself
    return value


def _validate(config: StudyConfig) -> None:
    if config.trace_every < 0:
        raise QuailError(
            f"trace_every must be a whole number of steps >= 0, got {config.trace_every}"
        )
    if config.eval_limit is not None and config.eval_limit < 1:
        raise QuailError(f"eval_limit must be a whole number >= 1 or null, got {config.eval_limit}")
    if not config.methods:
        raise QuailError("the study lists no methods: add e.g. `methods: [ga_gdr, quail]`")
    for run in config.methods:
        if run.method not in METHODS:
            raise QuailError(
                f"unknown method {run.method!r} in the study: use one of {', '.join(METHODS)}"
            )
    names = [run.name for run in config.methods]
    if len(set(names)) != len(names) or "original" in names:
        raise QuailError("method labels must be unique and not 'original': rename the runs")
    config.specs = [parse_spec(s).name for s in config.specs]
    if "fp" not in config.specs:
        config.specs.insert(0, "fp")  # recovery is measured against full precision
    if config.analysis_specs is None:
        config.analysis_specs = [s for s in config.specs if s != "fp"]
    config.analysis_specs = [parse_spec(s).name for s in config.analysis_specs]
    from quail.unlearning import make_config

    for run in config.methods:  # a bad setting stops the study now, not after hours of work
        make_config(unlearn_settings(config, run))
    if config.inject or config.data == "countries":
        from quail.countries import inject_config

        inject_config(config.inject)
        if config.base == "builtin":
            raise QuailError("country data and injection need a pretrained base: e.g. smollm2-135m")
    if config.retrain and (config.base != "builtin" or config.task != "knowledge"):
        raise QuailError(
            "retrain needs the built-in knowledge base (base: builtin, task: knowledge): "
            "remove retrain for other bases"
        )
    if config.task not in ("knowledge", "claims"):
        raise QuailError(f"unknown task {config.task!r}: use knowledge or claims")
    if config.forget or config.retain or config.test:
        _check_files(config)
    allowed = FORGET_METRICS if config.task == "knowledge" else ("acc_claims_forget",)
    config.headline_metric = config.headline_metric or allowed[0]
    if config.headline_metric not in allowed:
        raise QuailError(
            f"headline_metric {config.headline_metric!r} is not a forget metric of the "
            f"{config.task} task: use one of {', '.join(allowed)}"
        )


def _check_files(config: StudyConfig) -> None:
    """A study on the user's own forget/retain files. Knowledge probes need a model of theirs;
    the claims task's text,label files become a data folder, and `base: builtin` trains the
    built-in classifier on them."""
    if not config.forget:
        raise QuailError("retain: and test: go with forget: in a study config; add forget: FILE")
    if config.data != "builtin" or config.inject or config.retrain:
        raise QuailError("a study takes data: or forget:/retain: files, not both: drop one")
    if config.task == "claims":
        if not config.retain:
            raise QuailError("task: claims needs retain: FILE, the text,label records to keep")
        return
    if config.test:
        raise QuailError("test: holds held-out claims: use it with task: claims")
    if config.base == "builtin":
        raise QuailError(
            "forget:/retain: question or text files need your model as base: (the built-in "
            "one is trained on a data folder; with task: claims it trains on your files)"
        )
    from quail.data.files import FORMS

    if config.question_format not in ("auto", *FORMS):
        raise QuailError(
            f"unknown question_format {config.question_format!r}: use auto, {', '.join(FORMS)}"
        )


def unlearn_settings(config: StudyConfig, run: MethodRun) -> dict:
    """The unlearn settings of one method's run: the study's shared `unlearn`, then the run's
    overrides. A method with settings of its own (quail's lr, steps, check frequency) keeps
    them over the shared ones, which size the baselines' budgets: only its overrides change
    them. With `trace_every`, the other methods check their forgetting as quail does, in every
    format they name, and stop on it only where nothing is left to forget. Unlearning aims at
    the first analysis spec's linear layers unless they name a `quant` (aiming at an `+emb-`
    part as well changed nothing measurable: docs/METHODS.md)."""
    target = {}
    if config.analysis_specs:
        target = {"quant": parse_spec(config.analysis_specs[0]).linear.name}
    method = METHODS.get(run.method)
    own = dict(method.defaults) if method else {}
    shared = {key: value for key, value in config.unlearn.items() if key not in own}
    trace = {}
    if config.trace_every and method and not method.measured:  # checks that never stop it
        trace = {"measure": True, "target": 0.0, "utility_floor": 0.0}
        trace["check_every"] = config.trace_every
    return {**target, **shared, **trace, **run.overrides, "method": run.method}
