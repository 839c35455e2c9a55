"""Bad input and faults, typed as a user types them: each case runs `quail` in a subprocess and
asserts exit 2 for bad input (1 for an environment failure), one line naming the problem and
the fix, no traceback, and nothing written or changed in the folder the case works in.

The cases run two at a time in one module fixture (a CLI start costs seconds of imports); each
is then its own test. docs/RELIABILITY.md lists what they prove.
"""

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tiny
import unlearn_tiny
from quail.data import build_dataset

QUAIL = [sys.executable, "-m", "quail.cli"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny model folder (`model`) and a small data folder (`data`), shared and never changed."""
    root = tmp_path_factory.mktemp("world")
    unlearn_tiny.fresh_model().save_pretrained(root / "model")
    unlearn_tiny.tokenizer().save_pretrained(root / "model")
    build_dataset(root / "data", seed=0, size="small")
    return root


# --- setups: each makes the faulty input inside the case's folder ------------------------------


def model_copy(case: Path, world: Path) -> Path:
    shutil.copytree(world / "model", case / "m")
    return case / "m"


def data_copy(case: Path, world: Path) -> Path:
    shutil.copytree(world / "data", case / "d")
    return case / "d"


def weights(write):
    return lambda case, world: write(model_copy(case, world) / "model.safetensors")


def config_json(text: str):
    return lambda case, world: (model_copy(case, world) / "config.json").write_text(text)


def edit_config(**changes):
    def setup(case, world):
        path = model_copy(case, world) / "config.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | changes))

    return setup


def pickle_only(case, world):
    folder = model_copy(case, world)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")


def nan_weights(case, world):
    model = unlearn_tiny.fresh_model()
    model.model.layers[0].mlp.up_proj.weight.data[0, 0] = float("nan")
    model.save_pretrained(case / "m")
    unlearn_tiny.tokenizer().save_pretrained(case / "m")


def other_vocabulary(case, world):
    tiny.tiny_llama(vocab_size=8).save_pretrained(case / "m")
    unlearn_tiny.tokenizer().save_pretrained(case / "m")  # 29 tokens for 8 embedding rows


def narrower_model(case, world):
    narrower = {"hidden_size": 32, "intermediate_size": 32, "max_position_embeddings": 32}
    tiny.tiny_llama(vocab_size=len(unlearn_tiny.WORDS), **narrower).save_pretrained(case / "m")


def data_file(name: str, edit):
    """A data copy whose `name` is rewritten by `edit(lines) -> lines` (lines of text)."""

    def setup(case, world):
        path = data_copy(case, world) / name
        path.write_bytes(edit(path.read_bytes()))

    return setup


def first_record(name: str, **changes):
    def edit(raw: bytes) -> bytes:
        first, rest = raw.split(b"\n", 1)
        record = json.loads(first) | changes
        return json.dumps(record).encode() + b"\n" + rest

    return data_file(name, edit)


def manifest(**changes):
    return data_file("manifest.json", lambda raw: json.dumps(json.loads(raw) | changes).encode())


def no_forget_split(case, world):
    for name in ("entities.jsonl", "passages.jsonl", "qa.jsonl"):
        path = case / "d" / name
        path.write_bytes(path.read_bytes().replace(b'"split":"forget"', b'"split":"holdout"'))


def file_at(relative: str, content: bytes = b"x"):
    def setup(case, world):
        (case / relative).parent.mkdir(parents=True, exist_ok=True)
        (case / relative).write_bytes(content)

    return setup


def folder_with(relative: str, files: dict[str, bytes]):
    def setup(case, world):
        for name, content in files.items():
            (case / relative / name).parent.mkdir(parents=True, exist_ok=True)
            (case / relative / name).write_bytes(content)

    return setup


def link_out(case, world):
    (case / "target").mkdir()
    (case / "out").symlink_to(case / "target")


def live_lock(case, world):
    import socket

    (case / ".out.lock").write_text(f"{os.getppid()}@{socket.gethostname()}\n")


def study(text: str, relative: str = "study.yaml"):
    """A study config at `relative`; {model} and {data} name the world's model and data."""

    def setup(case, world):
        (case / relative).parent.mkdir(parents=True, exist_ok=True)
        paths = text.replace("{model}", str(world / "model")).replace("{data}", str(world / "data"))
        (case / relative).write_text(paths)

    return setup


def both(*setups):
    def setup(case, world):
        for one in setups:
            one(case, world)

    return setup


@dataclass
class Case:
    id: str
    args: list[str]  # {model}, {data}, {case} are filled in
    message: str  # a part of the one line
    setup: object = None  # setup(case_folder, world)
    code: int = 2
    may_write: set[str] = field(default_factory=set)  # paths the run may leave (relative)


M, D = "{model}", "{data}"
QUANTIZE = ["quantize", "{case}/m", "--quant", "int8", "--out", "{case}/out"]
UNLEARN = ["unlearn", "--model", M, "--data", D, "--out", "{case}/out", "--method", "ga_gdr"]
EVALUATE = ["evaluate", M, "--data", D, "--quant", "fp", "--limit", "2"]
EVALUATE_DATA = ["evaluate", M, "--data", "{case}/d", "--quant", "fp", "--limit", "2"]
UNLEARN_DATA = [
    "unlearn",
    "--model",
    M,
    "--data",
    "{case}/d",
    "--out",
    "{case}/out",
    "--method",
    "ga_gdr",
]
RUN = ["run", "{case}/study.yaml", "--out", "{case}/out"]
CHECKPOINT = "out.checkpoints/step-000001"
GOOD_STATE = b'{"step": 1}'

CASES = [
    # model folders
    Case("quantize-missing-model", QUANTIZE, "does not exist"),
    Case("quantize-model-is-a-file", QUANTIZE, "is a file, not a model folder", file_at("m")),
    Case("quantize-no-config", QUANTIZE, "no config.json", folder_with("m", {"w.txt": b""})),
    Case("quantize-pickle-only", QUANTIZE, "only pickle weights", pickle_only),
    Case(
        "quantize-truncated-weights",
        QUANTIZE,
        "cannot read the weights",
        weights(lambda p: p.write_bytes(p.read_bytes()[:1000])),
    ),
    Case(
        "quantize-empty-weights",
        QUANTIZE,
        "cannot read the weights",
        weights(lambda p: p.write_bytes(b"")),
    ),
    Case("quantize-config-garbage", QUANTIZE, "config.json is not valid JSON", config_json("{{")),
    Case("quantize-config-a-list", QUANTIZE, "is not a model config", config_json("[1, 2]")),
    Case(
        "quantize-unknown-architecture",
        QUANTIZE,
        "cannot read the config",
        edit_config(model_type="no-such-model"),
    ),
    Case(
        "quantize-remote-code",
        QUANTIZE,
        "cannot read the config",
        edit_config(model_type="custom", auto_map={"AutoConfig": "evil.Config"}),
    ),
    Case("quantize-nan-weights", QUANTIZE, "NaN or inf weights", nan_weights),
    Case("quantize-unknown-spec", [*QUANTIZE, "--quant", "int3z"], "int3z", model_copy),
    Case(
        "quantize-calibrated-spec",
        ["quantize", M, "--quant", "gptq-int4-g32", "--out", "{case}/out"],
        "quantizes whole models on calibration text",
    ),
    Case(
        "quantize-out-is-a-file",
        [*QUANTIZE[:4], "--out", "{case}/f"],
        "is a file",
        both(model_copy, file_at("f")),
    ),
    Case(
        "quantize-out-below-a-file",
        [*QUANTIZE[:4], "--out", "{case}/f/out"],
        "is below the file",
        both(model_copy, file_at("f")),
    ),
    Case("quantize-out-not-empty", QUANTIZE, "is not empty", both(model_copy, file_at("out/x"))),
    Case("quantize-out-a-link", QUANTIZE, "is a link", both(model_copy, link_out)),
    Case(
        "quantize-out-locked", QUANTIZE, "is being written by process", both(model_copy, live_lock)
    ),
    # analyze
    Case(
        "analyze-different-shapes",
        ["analyze", M, "{case}/m", "--quant", "int8"],
        "shape",
        narrower_model,
    ),
    Case(
        "analyze-truncated-weights",
        ["analyze", M, "{case}/m", "--quant", "int4"],
        "model.safetensors",
        weights(lambda p: p.write_bytes(p.read_bytes()[:1000])),
    ),
    Case("analyze-unknown-spec", ["analyze", M, M, "--quant", "q4"], "q4"),
    Case(
        "analyze-json-a-folder",
        ["analyze", M, M, "--quant", "int4", "--json", "{case}"],
        "is a folder",
    ),
    Case(
        "analyze-json-below-a-file",
        ["analyze", M, M, "--quant", "int4", "--json", "{case}/f/a.json"],
        "is below the file",
        file_at("f"),
    ),
    # evaluate: options
    Case("evaluate-limit-0", [*EVALUATE, "--limit", "0"], "--limit must be at least 1"),
    Case("evaluate-limit-negative", [*EVALUATE, "--limit", "-1"], "--limit must be at least 1"),
    Case("evaluate-quant-empty", [*EVALUATE, "--quant", ""], "names no spec"),
    Case("evaluate-quant-unknown", [*EVALUATE, "--quant", "fp,int5x"], "int5x"),
    Case("evaluate-unknown-task", [*EVALUATE, "--task", "poems"], "unknown task"),
    Case(
        "evaluate-json-below-a-file",
        [*EVALUATE, "--json", "{case}/f/r.json"],
        "is below the file",
        file_at("f"),
    ),
    Case("evaluate-missing-data", [*EVALUATE, "--data", "{case}/nope"], "does not exist"),
    Case("evaluate-nan-weights", ["evaluate", "{case}/m", "--data", D], "NaN or inf", nan_weights),
    Case(
        "evaluate-other-vocabulary",
        ["evaluate", "{case}/m", "--data", D, "--limit", "2"],
        "the tokenizer has",
        other_vocabulary,
    ),
    Case(
        "evaluate-config-a-list",
        ["evaluate", "{case}/m", "--data", D],
        "is not a model config",
        config_json("[]"),
    ),
    # data folders: the manifest
    Case(
        "data-manifest-a-list",
        EVALUATE_DATA,
        "expected a JSON object",
        data_file("manifest.json", lambda raw: b"[1, 2]"),
    ),
    Case(
        "data-manifest-garbage",
        EVALUATE_DATA,
        "malformed JSON",
        data_file("manifest.json", lambda raw: raw[:20]),
    ),
    Case("data-schema-version-2", EVALUATE_DATA, "schema_version 2", manifest(schema_version=2)),
    Case("data-schema-version-99", UNLEARN_DATA, "schema_version 99", manifest(schema_version=99)),
    Case(
        "data-stale-sha256",
        EVALUATE_DATA,
        "changed since its manifest was written",
        data_file("qa.jsonl", lambda raw: raw.replace(b"Kyoto", b"Osaka")),
    ),
    Case(
        "data-file-missing",
        EVALUATE_DATA,
        "listed in the manifest but missing",
        lambda case, world: (data_copy(case, world) / "claims.jsonl").unlink(),
    ),
    # data folders: records (--no-verify, so that the record itself is what fails)
    *(
        Case(f"data-{name}", [*EVALUATE_DATA, "--no-verify"], message, setup)
        for name, message, setup in [
            ("qa-malformed-json", "malformed JSON", data_file("qa.jsonl", lambda r: b"{" + r)),
            ("qa-not-utf8", "not UTF-8", data_file("qa.jsonl", lambda r: b"\xff\xfe" + r)),
            ("qa-answer-a-number", "answer must be a string", first_record("qa.jsonl", answer=7)),
            (
                "qa-question-null",
                "question must be a string",
                first_record("qa.jsonl", question=None),
            ),
            (
                "qa-paraphrase-a-string",
                "paraphrase must be true or false",
                first_record("qa.jsonl", paraphrase="no"),
            ),
            (
                "qa-missing-column",
                "missing column(s) answer",
                data_file("qa.jsonl", lambda r: r.replace(b'"answer"', b'"reply"', 1)),
            ),
            (
                "qa-a-list-per-line",
                "expected a JSON object",
                data_file("qa.jsonl", lambda r: b"[1]\n" + r),
            ),
            ("qa-empty", "has no records", data_file("qa.jsonl", lambda r: b"")),
            (
                "qa-duplicate-id",
                "appears twice",
                data_file("qa.jsonl", lambda r: r.split(b"\n", 1)[0] + b"\n" + r),
            ),
            (
                "qa-unknown-entity",
                "names unknown entity",
                first_record("qa.jsonl", entity_id="nobody"),
            ),
            (
                "qa-huge-line",
                "a line over 16 MiB",
                data_file("qa.jsonl", lambda r: b'{"id": "' + b"x" * (17 << 20) + b'"}\n' + r),
            ),
            (
                "passage-text-null",
                "text must be a string",
                first_record("passages.jsonl", text=None),
            ),
            (
                "entity-unknown-split",
                "has split 'later'",
                first_record("entities.jsonl", split="later"),
            ),
            (
                "entity-attributes-a-string",
                "attributes must be an object",
                first_record("entities.jsonl", attributes="none"),
            ),
            (
                "qa-file-missing",
                "qa.jsonl: no such file",
                lambda case, world: (data_copy(case, world) / "qa.jsonl").unlink(),
            ),
        ]
    ),
    Case(
        "data-claims-unknown-label",
        [*EVALUATE_DATA, "--no-verify", "--task", "claims"],
        "is not one of",
        first_record("claims.jsonl", label="maybe"),
    ),
    Case(
        "unlearn-no-forget-set",
        [*UNLEARN_DATA, "--no-verify"],
        "forget set is empty",
        both(data_copy, no_forget_split),
    ),
    # the user's own files
    Case(
        "unlearn-forget-file-wrong-columns",
        [
            "unlearn",
            "--model",
            M,
            "--forget",
            "{case}/f.jsonl",
            "--out",
            "{case}/out",
            "--method",
            "ga",
        ],
        "give question,answer or prompt,completion or messages or text",
        file_at("f.jsonl", b'{"q": "x", "a": "y"}\n'),
    ),
    Case(
        "unlearn-forget-is-retain",
        [
            *UNLEARN[:3],
            "--forget",
            "{case}/f.csv",
            "--retain",
            "{case}/f.csv",
            "--out",
            "{case}/o",
            "--method",
            "ga_gdr",
        ],  # fmt: skip
        "share 1 example",
        file_at("f.csv", b"question,answer\nWho?,ada\n"),
    ),
    Case("evaluate-data-and-forget", [*EVALUATE, "--forget", "{case}/f.jsonl"], "give either"),
    # unlearn: settings
    Case("unlearn-unknown-method", [*UNLEARN, "--method", "forgetful"], "unknown method"),
    Case("unlearn-lr-nan", [*UNLEARN, "lr=nan"], "lr"),
    Case("unlearn-lr-negative", [*UNLEARN, "lr=-1"], "lr must be positive"),
    Case("unlearn-steps-0", [*UNLEARN, "steps=0"], "steps"),
    Case(
        "unlearn-divergence-negative", [*UNLEARN, "divergence_threshold=-1"], "divergence_threshold"
    ),
    Case("unlearn-unknown-key", [*UNLEARN, "stepz=3"], "stepz"),
    Case("unlearn-not-key-value", [*UNLEARN, "steps"], "key=value"),
    Case("unlearn-quail-without-formats", [*UNLEARN, "--method", "quail", "--quant", ""], "quant"),
    Case("unlearn-unknown-task", [*UNLEARN, "--task", "poems"], "unknown task"),
    Case(
        "unlearn-config-garbage",
        [*UNLEARN, "--model", "{case}/m"],
        "config.json is not valid JSON",
        config_json("{{"),
    ),
    Case("unlearn-config-missing", [*UNLEARN, "--config", "{case}/none.yaml"], "none.yaml"),
    Case(
        "unlearn-config-not-yaml",
        [*UNLEARN, "--config", "{case}/c.yaml"],
        "YAML",
        file_at("c.yaml", b"steps: [1,"),
    ),
    Case(
        "unlearn-config-a-list",
        [*UNLEARN, "--config", "{case}/c.yaml"],
        "mapping",
        file_at("c.yaml", b"- steps\n"),
    ),
    Case(
        "unlearn-truncated-weights",
        [*UNLEARN, "--model", "{case}/m"],
        "cannot read the weights",
        weights(lambda p: p.write_bytes(b"\0" * 64)),
    ),
    Case(
        "unlearn-other-vocabulary",
        [*UNLEARN, "--model", "{case}/m", "steps=1"],
        "the tokenizer has",
        other_vocabulary,
    ),
    Case("unlearn-out-not-empty", UNLEARN, "is not empty", file_at("out/x")),
    Case(
        "unlearn-out-below-a-file",
        [*UNLEARN, "--out", "{case}/f/out"],
        "is below the file",
        file_at("f"),
    ),
    Case("unlearn-out-locked", UNLEARN, "is being written by process", live_lock),
    # unlearn: checkpoints
    Case("resume-nothing", [*UNLEARN, "--resume"], "nothing to resume"),
    Case(
        "resume-planted-pickle",
        [*UNLEARN, "--resume"],
        "which quail never writes",
        folder_with(CHECKPOINT, {"trainer_state.json": GOOD_STATE, "custom_0.pkl": b"\x80."}),
    ),
    Case(
        "resume-damaged-checkpoint",
        [*UNLEARN, "--resume"],
        "cannot be read",
        folder_with(CHECKPOINT, {"trainer_state.json": b"{", "model.safetensors": b"\0"}),
    ),
    # data build, models, report, demo
    Case(
        "data-build-unknown-size", ["data", "build", "--out", "{case}/o", "--size", "huge"], "huge"
    ),
    Case(
        "data-build-out-below-a-file",
        ["data", "build", "--out", "{case}/f/o"],
        "is below the file",
        file_at("f"),
    ),
    Case("data-build-out-not-data", ["data", "build", "--out", "{case}/o"], "o", file_at("o/x")),
    Case("models-get-unknown", ["models", "get", "gpt-17"], "gpt-17"),
    Case("report-not-a-study", ["report", "{case}"], "holds no study"),
    Case(
        "demo-out-below-a-file",
        ["demo", "--out", "{case}/f/demo"],
        "is below the file",
        file_at("f"),
    ),
    # studies
    Case("run-config-missing", RUN, "does not exist"),
    Case("run-config-not-yaml", RUN, "not valid YAML", study("methods: [ga,\n")),
    Case("run-config-a-list", RUN, "mapping", study("- ga\n")),
    Case("run-methods-a-number", RUN, "must be a list", study("methods: 5\n")),
    Case("run-specs-a-number", RUN, "must be a list", study("methods: [ga]\nspecs: 5\n")),
    Case("run-unknown-method", RUN, "unknown method", study("methods: [forgetful]\n")),
    Case("run-unknown-key", RUN, "did you mean 'specs'", study("methods: [ga]\nspecz: [fp]\n")),
    Case("run-eval-limit-negative", RUN, "eval_limit", study("methods: [ga]\neval_limit: -5\n")),
    Case("run-bad-lr", RUN, "lr", study("methods: [ga]\nunlearn: {lr: -1}\n")),
    Case(
        "run-out-below-a-file",
        [*RUN, "--out", "{case}/f/out"],
        "is below the file",
        both(study("methods: [ga]\n"), file_at("f")),
    ),
    Case(
        "run-missing-data",
        RUN,
        "does not exist",
        study(f"methods: [ga]\nbase: {M}\ndata: ./nope\n"),
    ),
    Case(
        "run-data-relative-to-the-config",
        ["run", "{case}/configs/study.yaml", "--out", "{case}/out"],
        "d/qa.jsonl changed since",  # ../d is found beside the config, not in the cwd
        both(
            study(f"methods: [ga]\nbase: {M}\ndata: ../d\n", "configs/study.yaml"),
            data_file("qa.jsonl", lambda raw: raw.replace(b"Kyoto", b"Osaka")),
        ),
    ),
]


def _fill(args: list[str], case: Path, world: Path) -> list[str]:
    names = {"model": world / "model", "data": world / "data", "case": case}
    return [a.format(**names) for a in args]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file() and not p.is_symlink()
        else "folder"
        for p in folder.rglob("*")
    }


def _run(case: Case, world: Path, root: Path) -> dict:
    folder = root / case.id
    folder.mkdir()
    if case.setup:
        case.setup(folder, world)
    before = _snapshot(folder)
    env = {**os.environ, "COLUMNS": "200"}  # one line is one line, not wrapped at 80
    done = subprocess.run(
        QUAIL + _fill(case.args, folder, world),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,  # relative paths in a config must not resolve against the cwd
        env=env,
    )
    return {"done": done, "before": before, "after": _snapshot(folder)}


@pytest.fixture(scope="module")
def outcomes(world, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cases")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case.id: pool.submit(_run, case, world, root) for case in CASES}
    return {name: future.result() for name, future in futures.items()}


def test_there_are_at_least_60_cases_with_unique_names():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_one_line_and_an_exit_code(case, outcomes):
    outcome = outcomes[case.id]
    done = outcome["done"]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert case.message in lines[0], lines[0]
    assert done.returncode == case.code, lines[0]
    assert outcome["after"] == outcome["before"], "the failed run wrote or changed files"


# --- faults that need a live process: signals, a second writer, a full disk --------------------


def quail(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(QUAIL + list(args), capture_output=True, text=True, env=env, **kwargs)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def unlearn_args(world: Path, out: Path, *extra: str) -> list[str]:
    model, data = str(world / "model"), str(world / "data")
    return [
        "unlearn",
        "--model",
        model,
        "--data",
        data,
        "--out",
        str(out),
        "progress=false",
        *extra,
    ]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_keeps_a_checkpoint_that_resumes(world, tmp_path, signum, code):
    out = tmp_path / "out"
    args = unlearn_args(world, out, "--method", "ga_gdr", "steps=100000", "save_every=1")
    first = subprocess.Popen(QUAIL + args, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp_path / "out.checkpoints"
    deadline = time.monotonic() + 240
    while not list(checkpoints.glob("step-*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # training has begun once the first checkpoint is there
    # a second writer is refused at once, naming the first
    second = quail(*unlearn_args(world, out, "--method", "ga_gdr", "steps=2"))
    assert second.returncode == 2 and f"process {first.pid}@" in one_error_line(second)
    first.send_signal(signum)
    stderr = first.communicate(timeout=120)[1]
    assert first.returncode == code, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    (kept,) = checkpoints.glob("step-*")  # the one written on the signal; no temporary left
    assert not list(checkpoints.glob(".*")) and not out.exists()
    assert not (tmp_path / ".out.lock").exists()
    step = int(kept.name.removeprefix("step-"))
    done = quail(*args[:-2], f"steps={step + 2}", "--resume")  # steps may change on resume
    assert done.returncode == 0, done.stderr
    run = json.loads((out / "run.json").read_text())
    assert len(run["curves"]) == step + 2 and run["resumes"][0]["step"] == step


def test_a_lock_left_by_a_dead_process_is_taken_over(world, tmp_path):
    import socket

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    (tmp_path / ".out.lock").write_text(f"{dead.pid}@{socket.gethostname()}\n")
    done = quail(
        "quantize", str(world / "model"), "--quant", "int8", "--out", str(tmp_path / "out")
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert not (tmp_path / ".out.lock").exists()


def _file_size_limit(limit: int):
    """A quota for the child: writes past `limit` bytes fail with EFBIG, as a full disk fails."""

    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error to handle, not a kill

    return apply


def test_a_write_past_the_quota_is_one_line_and_leaves_earlier_outputs(world, tmp_path):
    earlier = tmp_path / "earlier"
    shutil.copytree(world / "model", earlier)
    before = _snapshot(tmp_path)
    done = quail(
        "quantize", str(earlier), "--quant", "int8", "--out", str(tmp_path / "out"),
        preexec_fn=_file_size_limit(4096),
    )  # fmt: skip
    assert done.returncode == 1 and "File too large" in one_error_line(done)
    assert _snapshot(tmp_path) == before  # no temporary folder, the earlier model untouched


def test_a_checkpoint_past_the_quota_is_one_line_and_leaves_no_temporary(world, tmp_path):
    args = unlearn_args(world, tmp_path / "out", "--method", "ga_gdr", "steps=4", "save_every=2")
    done = quail(*args, preexec_fn=_file_size_limit(4096))
    assert done.returncode == 1 and "writing checkpoint" in one_error_line(done)
    assert not list(tmp_path.rglob("*.tmp*")) and not (tmp_path / "out").exists()


def test_no_verify_reads_a_folder_edited_on_purpose(world, tmp_path):
    edited = data_copy(tmp_path, world)
    qa = edited / "qa.jsonl"
    qa.write_bytes(qa.read_bytes().replace(b"Kyoto", b"Osaka"))
    args = ["evaluate", str(world / "model"), "--data", str(edited), "--quant", "fp"]
    assert quail(*args, "--limit", "2").returncode == 2
    done = quail(*args, "--limit", "2", "--no-verify")
    assert done.returncode == 0, done.stderr


def test_a_model_folder_of_links_loads_as_the_hub_cache_lays_it_out(world, tmp_path):
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "main"
    blobs.mkdir(), snapshot.mkdir(parents=True)
    for item in (world / "model").iterdir():
        shutil.copy(item, blobs / item.name)
        (snapshot / item.name).symlink_to(blobs / item.name)
    done = quail("quantize", str(snapshot), "--quant", "int8", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr


def test_debug_shows_the_traceback(world):
    done = quail("--debug", "evaluate", str(world / "model"), "--data", "x", "--limit", "0")
    assert done.returncode != 0 and "Traceback" in done.stderr and "QuailError" in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
@pytest.mark.parametrize(
    "args",
    [
        ["quantize", M, "--quant", "int8", "--out", "{case}/locked/out"],
        ["evaluate", M, "--data", D, "--limit", "2", "--json", "{case}/locked/r.json"],
        ["data", "build", "--out", "{case}/locked/data"],
    ],
    ids=["quantize", "evaluate-json", "data-build"],
)
def test_an_unwritable_place_is_refused_before_any_work(world, tmp_path, args):
    (tmp_path / "locked").mkdir(mode=0o555)
    done = quail(*_fill(args, tmp_path, world))
    assert done.returncode == 2 and "permission denied" in one_error_line(done)


def test_a_message_in_brackets_is_shown_as_written(capsys):
    """The one line is text, not console markup: an install hint keeps its [extra]."""
    import typer

    from quail.cli import fail_cleanly
    from quail.errors import QuailError

    @fail_cleanly
    def command():
        raise QuailError('install it: pip install "quail-unlearn[gptq]"')

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 2
    assert 'pip install "quail-unlearn[gptq]"' in capsys.readouterr().err
