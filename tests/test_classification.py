"""The user's own text,label files run the claims task: import, study, unlearn and evaluate read
them as they read the built-in claims, and bad files are one line before any work."""

import csv
import json

import pytest
from typer.testing import CliRunner

from quail.cli import app
from quail.data import build_dataset, load_claims
from quail.data.classification import load_claim_file_sets
from quail.errors import QuailError


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_csv(path, rows, columns=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def tweets(tmp_path_factory):
    """The built-in small claims, written as a user would have them: forget.csv (one campaign),
    retain.jsonl and test.csv of text,label (and a campaign column the files may carry)."""
    root = tmp_path_factory.mktemp("tweets")
    built = build_dataset(root / "built", size="small")
    split = {s: load_claims(built, s) for s in ("forget", "retain", "test")}
    write_csv(root / "forget.csv", split["forget"], ("text", "label", "campaign"))
    write_jsonl(
        root / "retain.jsonl", [{k: r[k] for k in ("text", "label")} for r in split["retain"]]
    )
    write_csv(root / "test.csv", split["test"])
    return root, split


def claims_of(folder):
    return [(r["text"], r["label"], r["split"]) for r in load_claims(folder)]


def test_files_or_a_folder_import_as_the_built_in_claims(tweets, tmp_path):
    root, split = tweets
    files = ["--forget", root / "forget.csv", "--retain", root / "retain.jsonl"]
    result = cli("data", "import", "--format", "claims", *files, "--test", root / "test.csv",
                 "--out", tmp_path / "flags")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'flags'} (claims): 48 claims" in result.output
    expected = [(r["text"], r["label"], s) for s in split for r in split[s]]
    assert claims_of(tmp_path / "flags") == expected
    manifest = json.loads((tmp_path / "flags" / "manifest.json").read_text())
    assert manifest["labels"] == ["misinformation", "reliable"]
    assert {r["campaign"] for r in load_claims(tmp_path / "flags", "forget")} == {"campaign-0"}
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("forget.csv", "retain.jsonl", "test.csv"):
        (folder / name).write_bytes((root / name).read_bytes())
    result = cli("data", "import", "--format", "claims", folder, "--out", tmp_path / "src-out")
    assert result.exit_code == 0, result.output
    assert claims_of(tmp_path / "src-out") == expected


def test_labels_may_be_numbers_and_any_words(tmp_path):
    forget = write_jsonl(tmp_path / "f.jsonl", [{"text": "great film", "label": 1}])
    retain = write_csv(tmp_path / "r.csv", rows(("dull film", "0"), ("ok", 1)))
    sets = load_claim_file_sets(forget, retain)
    assert [(e.prompt, e.target) for e in sets["forget"]] == [("Claim: great film\nLabel:", " 1")]
    assert [e.target for e in sets["retain"]] == [" 0", " 1"] and sets["test"] == []


def rows(*pairs):
    return [{"text": t, "label": label} for t, label in pairs]


ROWS, C = rows(("a", "x"), ("b", "y")), rows(("c", "x"))
BAD = {  # id: (forget, retain, test, what the one line says)
    "columns": ([{"tweet": "a", "label": "x"}], ROWS, None, "columns label, tweet; a class"),
    "empty": ([], ROWS, None, "forget.jsonl: no records"),
    "one-label": (C, rows(("a", "x")), None, "one label, 'x': a classifier needs two or more"),
    "unknown-label": (C, ROWS, rows(("d", "z")), "1: label 'z' is in no forget or retain record"),
    "overlap": (rows(("a", "x")), ROWS, None, "retain.jsonl, record 1 repeats the text of "),
    "test-overlap": (C, ROWS, rows(("b", "y")), "(retain and test): keep each text in one set"),
    "two-labels": (rows(("c", "x"), ("c", "y")), ROWS, None, "with another label: keep one"),
    "blank-text": (C, ROWS, rows((" ", "x")), "text must be non-empty text"),
    "bool-label": (C, ROWS, rows(("d", True)), "label must be a word or a whole number"),
    "two-line-label": (C, ROWS, rows(("d", "x\ny")), "label must be one line"),
}


@pytest.mark.parametrize(("forget", "retain", "test", "message"), BAD.values(), ids=BAD)
def test_bad_files_are_one_line_and_write_nothing(tmp_path, forget, retain, test, message):
    args = ["data", "import", "--format", "claims", "--out", tmp_path / "out"]
    for name, records in (("forget", forget), ("retain", retain), ("test", test)):
        if records is not None:
            args += [f"--{name}", write_jsonl(tmp_path / f"{name}.jsonl", records)]
    result = cli(*args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


CLAIMS = ["--format", "claims", "--forget"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*CLAIMS, "f.csv"], "no retain file"),
        ([*CLAIMS, "f.csv", "--retain", "r.csv", "--holdout", "h.csv"], "not --holdout"),
        (["--format", "qa", "--forget", "f.csv", "--test", "t.csv"], "--test is the claims"),
        ([*CLAIMS, "f.txt", "--retain", "r.csv"], "f.txt: unsupported file type"),
        (["--format", "claims", "src"], "no forget file: give the text,label records"),
    ],
)
def test_options_that_do_not_fit_the_claims_format(tmp_path, monkeypatch, args, message):
    (tmp_path / "src").mkdir()
    for name in ("f.csv", "r.csv", "f.txt", "src/retain.csv"):
        write_csv(tmp_path / name, ROWS)
    monkeypatch.chdir(tmp_path)
    result = cli("data", "import", *args, "--out", "out")
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.fixture(scope="module")
def study(tweets, tmp_path_factory):
    """The claims study on the user's files (beside the config): the built-in classifier
    trained on them, one method, full precision and int4."""
    root, _ = tweets
    out = tmp_path_factory.mktemp("study")
    config = root / "study.yaml"
    config.write_text(
        "task: claims\nforget: forget.csv\nretain: retain.jsonl\ntest: test.csv\n"
        "specs: [fp, int4]\neval_limit: null\nmethods: [ga_gdr]\n"
        "unlearn: {steps: 2, lr: 1.0e-3, batch_size: 4, progress: false}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUAIL_CACHE", str(out / "cache"))
        result = cli("run", config, "--out", out / "run")
    assert result.exit_code == 0, result.output
    return out / "run", json.loads((out / "run" / "results.json").read_text())


def test_a_study_on_text_label_files_scores_every_set_at_every_precision(study, tweets):
    run, results = study
    root, split = tweets
    assert claims_of(run / "data") == [(r["text"], r["label"], s) for s in split for r in split[s]]
    for model in (results["original"], results["methods"]["ga_gdr"]):
        for spec in ("fp", "rtn-int4-g64-sym"):
            scores = model["metrics"][spec]
            assert {"acc_claims_forget", "acc_claims_retain", "acc_claims_test"} <= scores.keys()
    assert results["original"]["metrics"]["fp"]["acc_claims_retain"] >= 0.9  # it was trained
    assert "acc_claims_forget" in results["methods"]["ga_gdr"]["recovery"]["rtn-int4-g64-sym"]
    fingerprinted = json.loads((run / "data.sha256.json").read_text())
    assert set(fingerprinted) == {"claims.jsonl", "manifest.json"}


def test_unlearn_and_evaluate_take_the_files_as_the_study_does(study, tweets, tmp_path):
    run, results = study
    root, _ = tweets
    files = ["--task", "claims", "--forget", root / "forget.csv", "--retain", root / "retain.jsonl"]
    scores = tmp_path / "scores.json"
    result = cli("evaluate", run / "base", *files, "--test", root / "test.csv", "--quant", "fp",
                 "--json", scores)  # fmt: skip
    assert result.exit_code == 0, result.output
    fp = json.loads(scores.read_text())["results"]["fp"]
    assert fp == results["original"]["metrics"]["fp"]
    result = cli("unlearn", "--model", run / "base", *files, "--out", tmp_path / "out",
                 "--method", "ga_gdr", "steps=1", "batch_size=4", "progress=false")  # fmt: skip
    assert result.exit_code == 0, result.output
    unlearned = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (unlearned["n_forget"], unlearned["n_retain"]) == (6, 32)


def test_quail_on_claims_aims_at_the_held_out_accuracy(study, tweets, tmp_path):
    run, _ = study
    root, _ = tweets
    files = ["--task", "claims", "--forget", root / "forget.csv", "--retain", root / "retain.jsonl"]
    result = cli("unlearn", "--model", run / "base", *files, "--test", root / "test.csv",
                 "--out", tmp_path / "out", "--method", "quail", "--quant", "int4", "steps=2",
                 "check_every=1", "batch_size=4", "progress=false")  # fmt: skip
    assert result.exit_code == 0, result.output
    stop = json.loads((tmp_path / "out" / "run.json").read_text())["stop"]
    assert {"forget", "retain", "retain_probes", "holdout"} == set(stop["original"]["fp"])
    assert "held-out examples" in result.output or stop["reason"] != "target"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"forget": "f.csv"}, "task: claims needs retain: FILE"),
        ({"forget": "f.csv", "retain": "r.csv", "data": "d"}, "not both"),
        (
            {"task": "knowledge", "forget": "f", "test": "t", "base": "m"},
            "use it with task: claims",
        ),
        ({"test": "t.csv"}, "go with forget:"),
    ],
)
def test_a_claims_study_on_files_refuses_what_does_not_apply(values, message):
    from quail.study import study_config

    with pytest.raises(QuailError, match=message):
        study_config({"task": "claims", "methods": ["ga"]} | values)


def test_the_cli_claims_files_need_a_retain_file_and_test_needs_claims(tweets):
    root, _ = tweets
    forget = ["--forget", root / "forget.csv"]
    result = cli("evaluate", root, *forget, "--task", "claims")
    assert result.exit_code == 2 and "--task claims needs --retain FILE" in result.output
    result = cli("evaluate", root, *forget, "--test", root / "test.csv")
    assert result.exit_code == 2 and "use it with --task claims" in result.output
