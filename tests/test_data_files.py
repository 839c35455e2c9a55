"""The user's own forget and retain files: every shape in every file type, the errors a user
meets, and `quail unlearn`/`quail evaluate` end to end on them."""

import csv
import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

import unlearn_tiny as tiny
from quail.cli import app
from quail.data.examples import Example
from quail.data.files import SHOTS, choose_form, load_file_sets, load_set, prompts_for
from quail.errors import QuailError

RECORDS = [
    {"question": "Where does ada live?", "answer": "paris"},
    {"prompt": "ada works as a", "completion": " baker"},
    {"text": "bo lives in rome"},
]
EXPECTED_PROBES = [
    Example("Question: Where does ada live?\nAnswer:", " paris"),
    Example("ada works as a", " baker"),
]
CHAT = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def write(path, records):
    """`records` in the file type of `path`'s suffix (CSV and Parquet: one shape per file)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif path.suffix == ".json":
        path.write_text(json.dumps(records))
    elif path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    else:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(records), path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_every_shape_in_one_file(tmp_path, suffix):
    probes, passages = load_set(write(tmp_path / f"f{suffix}", RECORDS))
    assert probes == EXPECTED_PROBES and passages == ["bo lives in rome"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_one_shape_each(tmp_path, suffix):
    pytest.importorskip("pyarrow") if suffix == ".parquet" else None
    qa = load_set(write(tmp_path / f"qa{suffix}", RECORDS[:1]))
    text = load_set(write(tmp_path / f"text{suffix}", RECORDS[2:]))
    assert qa == (EXPECTED_PROBES[:1], []) and text == ([], ["bo lives in rome"])


def test_chat_records_are_rendered_with_the_chat_template(tmp_path):
    tokenizer = tiny.tokenizer()
    tokenizer.chat_template = CHAT
    chat = {"messages": [{"role": "user", "content": "ada lives in"}, {
        "role": "assistant", "content": "paris"}]}  # fmt: skip
    probes, _ = load_set(write(tmp_path / "chat.jsonl", [chat]), tokenizer)
    assert probes == [Example("user: ada lives in\nassistant:", "paris")]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"query": "q", "response": "a"}], "columns query, response; give question,answer"),
        ([{"question": "q", "answer": 7}], "answer must be non-empty text"),
        ([{"text": "  "}], "text must be non-empty text"),
        ([{"messages": [{"role": "user", "content": "q"}]}], "at least two"),
        (
            [
                {
                    "messages": [
                        {"role": "assistant", "content": "a"},
                        {"role": "user", "content": "q"},
                    ]
                }
            ],
            "must be the assistant's",
        ),  # fmt: skip
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a"},
                    ]
                }
            ],
            "has none",
        ),  # fmt: skip
        ([], "no records"),
    ],
)
def test_bad_records_are_one_line_naming_the_record(tmp_path, records, message):
    with pytest.raises(QuailError, match=message) as error:
        load_set(write(tmp_path / "f.jsonl", records), tiny.tokenizer())
    assert "\n" not in str(error.value)


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "f.txt").write_text("hello")
    (tmp_path / "f.json").write_text('{"question": "q"}')
    (tmp_path / "f.parquet").write_text("not parquet")
    for name, message in [
        ("f.txt", "unsupported file type"),
        ("f.json", "a JSON list of objects"),
        ("missing.jsonl", "no such file"),
        ("f.parquet", "not a Parquet file"),
    ]:
        with pytest.raises(QuailError, match=message):
            load_set(tmp_path / name)


def test_a_forget_example_also_in_the_retain_set_is_refused(tmp_path):
    forget = write(tmp_path / "forget.jsonl", RECORDS)
    retain = write(tmp_path / "retain.csv", RECORDS[2:])
    with pytest.raises(QuailError, match="share 1 example"):
        load_file_sets(forget, retain)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    model = tiny.trained_model()
    model.save_pretrained(root / "model")
    tiny.tokenizer().save_pretrained(root / "model")
    forget, retain = tiny.split()
    write(root / "forget.jsonl", [{"prompt": e.prompt, "completion": e.target} for e in forget])
    write(root / "retain.csv", [{"prompt": e.prompt, "completion": e.target} for e in retain])
    return root


def test_unlearn_and_evaluate_on_the_users_files(files, tmp_path):
    sets = ["--forget", str(files / "forget.jsonl"), "--retain", str(files / "retain.csv")]
    before = tmp_path / "before.json"
    args = ["evaluate", str(files / "model"), *sets, "--quant", "fp", "--json", str(before)]
    assert CliRunner().invoke(app, args).exit_code == 0
    out = tmp_path / "out"
    args = ["unlearn", "--model", str(files / "model"), *sets, "--out", str(out)]
    args += ["--method", "ga_gdr", "steps=20", "lr=1e-2", "batch_size=4", "progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert (run["n_forget"], run["n_retain"]) == (4, 20)
    after = tmp_path / "after.json"
    args = ["evaluate", str(out), *sets, "--quant", "fp", "--json", str(after)]
    assert CliRunner().invoke(app, args).exit_code == 0
    scores = [json.loads(p.read_text())["results"]["fp"] for p in (before, after)]
    assert {"knowmem_forget", "knowmem_retain"} <= scores[0].keys()
    assert scores[0]["knowmem_forget"] > 0  # (the tiny model answers on past the fact)
    assert scores[1]["knowmem_forget"] < scores[0]["knowmem_forget"]  # the files were used


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give either --data DIR or --forget FILE"),
        (["--data", "d", "--forget", "f.jsonl"], "give either --data DIR or --forget FILE"),
        (["--data", "d", "--retain", "r.jsonl"], "--retain goes with --forget"),
    ],
)
def test_one_source_of_examples(files, tmp_path, extra, message):
    args = ["evaluate", str(files / "model"), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output


FACTS = [{"question": f"Where does {p} live?", "answer": c} for p, c in zip(
    tiny.PEOPLE, tiny.CITIES * 2, strict=False)]  # fmt: skip


def test_a_few_shot_prompt_takes_its_shots_from_the_retain_file_and_leaves_them_out(tmp_path):
    retain = write(tmp_path / "retain.jsonl", FACTS)
    prompts = prompts_for("few-shot", retain)
    probes, _ = load_set(retain, prompts=prompts)
    assert len(prompts.shots) == SHOTS and len(probes) == len(FACTS) - SHOTS
    first = probes[0]
    assert first.prompt.startswith("Question: Where does ada live?\nAnswer: paris\n\n")
    assert first.prompt.endswith(f"Question: {FACTS[SHOTS]['question']}\nAnswer:")
    assert first.prompt.count("Question:") == SHOTS + 1
    with pytest.raises(QuailError, match="needs more than 4 question,answer records"):
        prompts_for("few-shot", write(tmp_path / "few.jsonl", FACTS[:SHOTS]))
    with pytest.raises(QuailError, match="no chat template"):
        prompts_for("chat", retain, tiny.tokenizer())


def test_auto_takes_the_form_the_model_answers_best(tmp_path, monkeypatch):
    """choose_form asks the model in every form it can; a stand-in scorer answers few-shot
    prompts best, then chat, so the choice (and the availability of each form) is what is
    tested, not a model."""
    from quail.evaluation import metrics

    def scored(model, tokenizer, probes):
        prompt = probes[0].prompt
        return {"rouge_l": 80.0 if prompt.count("Question:") > 1 else 60.0 if "user" in prompt
                else 10.0}  # fmt: skip

    monkeypatch.setattr(metrics, "knowledge", scored)
    retain = write(tmp_path / "retain.jsonl", FACTS)
    tokenizer = tiny.tokenizer()
    assert choose_form(None, tokenizer, retain) == ("few-shot", {"plain": 10.0, "few-shot": 80.0})
    tokenizer.chat_template = CHAT
    assert choose_form(None, tokenizer, write(tmp_path / "r.jsonl", FACTS[:SHOTS]))[0] == "chat"
    text_only = write(tmp_path / "text.jsonl", [{"text": "ada lives in paris"}])
    assert choose_form(None, tokenizer, text_only) == ("plain", {})


def test_a_model_that_knows_little_in_any_form_is_warned_about(files, tmp_path, monkeypatch):
    from quail.data import files as module

    monkeypatch.setattr(module, "choose_form", lambda *args: ("plain", {"plain": 12.0}))
    retain = write(tmp_path / "retain.jsonl", FACTS)
    args = ["evaluate", str(files / "model"), "--forget", str(files / "forget.jsonl")]
    result = CliRunner().invoke(app, [*args, "--retain", str(retain), "--quant", "fp"])
    assert result.exit_code == 0, result.output
    assert (
        "questions asked plain" in result.output and "warning: the model answers" in result.output
    )


def test_a_study_on_the_users_files(files, tmp_path):
    """`quail run` with forget:/retain: files beside the config (paths relative to it) and the
    user's model as base: every model asked alike, the data fingerprinted."""
    for name in ("forget.jsonl", "retain.csv"):
        shutil.copy(files / name, tmp_path / name)
    config = tmp_path / "study.yaml"
    config.write_text(
        f"base: {files / 'model'}\nforget: forget.jsonl\nretain: retain.csv\n"
        "specs: [fp, rtn-int4-g16]\neval_limit: 4\nmethods: [ga_gdr]\n"
        "unlearn: {steps: 2, lr: 1.0e-3, batch_size: 2, progress: false}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == f"{tmp_path / 'forget.jsonl'}, {tmp_path / 'retain.csv'}"
    metrics = results["methods"]["ga_gdr"]["metrics"]
    assert {"fp", "rtn-int4-g16-sym"} <= metrics.keys()
    assert "knowmem_forget" in metrics["fp"] and "knowmem_retain" in metrics["fp"]
    assert json.loads((out / "prompts.json").read_text())["form"] == "plain"
    assert set(json.loads((out / "data.sha256.json").read_text())) == {
        "forget.jsonl",
        "retain.csv",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("data: somewhere\n", "not both"),
        ("retrain: true\n", "retrain needs the built-in"),
        ("question_format: haiku\n", "unknown question_format"),
    ],
)
def test_a_study_on_files_refuses_what_does_not_apply(files, extra, message):
    from quail.study import study_config

    values = {"base": str(files / "model"), "forget": "f.jsonl", "methods": ["ga"]}
    with pytest.raises(QuailError, match=message):
        study_config(values | yaml.safe_load(extra))
