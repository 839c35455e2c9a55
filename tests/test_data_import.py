"""`quail data import`: TOFU, MUSE and the user's own files, written small in each layout, become
a data folder that quail's loaders, `quail evaluate` and `quail unlearn` read unchanged; bad
input is one line and exit 2, with nothing written."""

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import unlearn_tiny as tiny
from quail.cli import app
from quail.data import (
    load_entities,
    load_manifest,
    load_passages,
    load_qa,
    load_unlearning_sets,
    verify_data_folder,
)
from quail.data.importers import ImportOptions, import_data, split_passages
from quail.evaluation import load_eval_data


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def json_list(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), "utf-8")
    return path


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --- TOFU ---------------------------------------------------------------------------------------

# Ten "authors" of one fact each, in TOFU's order: forget10 is the last 4, forget05 the last 2,
# forget01 the last one; each retain set is everything before its forget set. Holdout authors
# were never trained on.
AUTHORS = [
    {"question": f"What does author {i} write?", "answer": f"Author {i} writes sea novels."}
    for i in range(10)
]
TOFU_SIZES = {"forget01": 1, "forget05": 2, "forget10": 4}
TOFU_RETAIN = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}


def holdout(split):
    """holdoutXX: one author of its own per split, so the test can tell which was read."""
    n = TOFU_SIZES[split]
    return [{"question": f"What does author 1{n} write?", "answer": f"Author 1{n} writes odes."}]


def perturbed(rows):
    return [
        r
        | {
            "paraphrased_question": r["question"].replace("What does", "Which books does"),
            "paraphrased_answer": "Sea novels.",
            "perturbed_answer": ["Poems.", "Plays.", "Cookbooks."],
        }
        for r in rows
    ]


def tofu_copy(root, splits=tuple(TOFU_SIZES), with_perturbed=True, write=jsonl):
    """A TOFU layout in miniature (JSON lines under .json, as TOFU ships them)."""
    for split in splits:
        n = TOFU_SIZES[split]
        write(root / f"{split}.json", AUTHORS[-n:])
        write(root / f"{TOFU_RETAIN[split]}.json", AUTHORS[:-n])
        if with_perturbed:
            write(root / f"{split}_perturbed.json", perturbed(AUTHORS[-n:]))
            write(root / f"{split.replace('forget', 'holdout')}.json", holdout(split))
    if with_perturbed:
        write(root / "retain_perturbed.json", perturbed(AUTHORS[:3]))
    write(root / "world_facts.json", [{"question": "Where is Paris?", "answer": "France"}])
    write(root / "real_authors.json", [{"question": "Who wrote Emma?", "answer": "Austen"}])
    return root


def test_a_full_tofu_copy_imports_its_largest_split_with_paraphrases_and_perturbed_answers(
    tmp_path,
):
    out = tmp_path / "data"
    result = cli("data", "import", "--format", "tofu", tofu_copy(tmp_path / "tofu"), "--out", out)
    assert result.exit_code == 0, result.output
    verify_data_folder(out)
    assert load_manifest(out)["split"] == "forget10"  # the largest forget set SRC holds
    forget = load_qa(out, "forget", paraphrase=False)
    assert [(r["question"], r["answer"]) for r in forget] == [
        (r["question"], r["answer"]) for r in AUTHORS[-4:]
    ]
    assert all(r["perturbed_answer"] == ["Poems.", "Plays.", "Cookbooks."] for r in forget)
    assert all(r["paraphrased_answer"] == "Sea novels." for r in forget)
    held_out = load_qa(out, "forget", paraphrase=True)
    assert [r["question"] for r in held_out] == [
        f"Which books does author {i} write?" for i in range(6, 10)
    ]
    assert len(load_qa(out, "retain", paraphrase=False)) == 6
    assert len(load_qa(out, "retain", paraphrase=True)) == 3  # retain_perturbed has three
    assert [r["question"] for r in load_qa(out, "holdout")] == ["What does author 14 write?"]
    assert len(load_eval_data(out).qa["holdout"]) == 1  # em_holdout, the chance level
    forget_set, retain_set = load_unlearning_sets(out)
    assert (len(forget_set), len(retain_set)) == (4, 6)  # paraphrases are never trained on
    assert forget_set[0].prompt == "Question: What does author 6 write?\nAnswer:"
    questions = {r["question"] for r in load_qa(out)}
    assert "Where is Paris?" not in questions and "Who wrote Emma?" not in questions
    assert "world_facts.json" in result.output and "real_authors.json" in result.output
    assert "missing" not in result.output


@pytest.mark.parametrize("split", list(TOFU_SIZES))
def test_tofu_split_picks_its_forget_set_and_matching_retain_and_holdout_sets(tmp_path, split):
    out = tmp_path / "data"
    import_data("tofu", tofu_copy(tmp_path / "tofu"), out, ImportOptions(split=split))
    n = TOFU_SIZES[split]
    assert [r["question"] for r in load_qa(out, "forget", paraphrase=False)] == [
        r["question"] for r in AUTHORS[-n:]
    ]
    assert [r["question"] for r in load_qa(out, "retain", paraphrase=False)] == [
        r["question"] for r in AUTHORS[:-n]
    ]
    assert [(r["question"], r["answer"]) for r in load_qa(out, "holdout")] == [
        (r["question"], r["answer"]) for r in holdout(split)
    ]
    assert [e["split"] for e in load_entities(out)] == ["forget", "retain", "holdout"]


def test_a_partial_tofu_copy_imports_what_is_there_and_names_what_is_missing(tmp_path):
    src = tofu_copy(tmp_path / "tofu", splits=("forget01",), with_perturbed=False)
    out = tmp_path / "data"
    result = cli("data", "import", "--format", "tofu", src, "--out", out)
    assert result.exit_code == 0, result.output
    missing = [line for line in result.output.splitlines() if line.startswith("missing")]
    assert len(missing) == 1
    assert "forget01_perturbed.json" in missing[0] and "retain_perturbed.json" in missing[0]
    assert load_manifest(out)["missing"] == [
        "forget01_perturbed.json",
        "retain_perturbed.json",
        "holdout01.json",
    ]
    assert len(load_qa(out, "forget")) == 1 and len(load_qa(out, "retain")) == 9
    assert load_qa(out, "forget", paraphrase=True) == []


def parquet(path, rows):
    pytest.importorskip("pyarrow")
    import pyarrow
    import pyarrow.parquet

    path.parent.mkdir(parents=True, exist_ok=True)
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path.with_suffix(".parquet"))


@pytest.mark.parametrize("write", [json_list, parquet], ids=["json-list", "parquet"])
def test_tofu_files_as_a_json_list_or_parquet_read_as_json_lines_do(tmp_path, write):
    as_lines, other = tmp_path / "lines", tmp_path / "other"
    import_data("tofu", tofu_copy(tmp_path / "a"), as_lines)
    import_data("tofu", tofu_copy(tmp_path / "b", write=write), other)
    assert (other / "qa.jsonl").read_bytes() == (as_lines / "qa.jsonl").read_bytes()


def test_a_tofu_hub_name_imports_the_hubs_files_as_a_local_copy(tmp_path, monkeypatch):
    """No network in tests: the download is replaced by a folder in the hub repository's
    layout, and the import must equal the one from that folder."""
    import huggingface_hub

    hub_files = tofu_copy(tmp_path / "hub")
    asked = {}

    def snapshot_download(repo_id, repo_type, allow_patterns):
        asked.update(repo_id=repo_id, repo_type=repo_type)
        return str(hub_files)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    result = cli("data", "import", "--format", "tofu", "locuslab/TOFU", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert asked == {"repo_id": "locuslab/TOFU", "repo_type": "dataset"}
    import_data("tofu", hub_files, tmp_path / "b")
    assert contents(tmp_path / "a") == contents(tmp_path / "b")


def test_a_tofu_hub_name_that_cannot_be_fetched_is_one_line_and_writes_nothing(
    tmp_path, monkeypatch
):
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    def missing(*args, **kwargs):
        response = SimpleNamespace(headers={}, request=None)  # what the error reads of it
        raise RepositoryNotFoundError("404", response=response)

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    for fake, code, message in (
        (missing, 2, "neither a local folder nor a dataset on the Hugging Face Hub"),
        (offline, 1, "could not download the dataset someone/tofu from the Hugging Face Hub"),
    ):
        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
        out = tmp_path / "out"
        result = cli("data", "import", "--format", "tofu", "someone/tofu", "--out", out)
        assert result.exit_code == code, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert not out.exists()


# --- MUSE ---------------------------------------------------------------------------------------

FORGET_TEXT = (
    "The mayor opened the bridge on Monday.\n\n"
    + " ".join(f"w{i}" for i in range(20))
    + "\n\nCrowds cheered.\n\nThe end."
)
ICL = [{"question": "Who opened the old bridge?", "answer": "The king"}]


def muse_copy(root, knowmem=True):
    (root / "raw").mkdir(parents=True)
    (root / "raw/forget.txt").write_text(FORGET_TEXT, "utf-8")
    (root / "raw/retain1.txt").write_text("The council met.\n\nTaxes rose.", "utf-8")
    (root / "raw/retain2.txt").write_text("Evaluation-only retain text.", "utf-8")
    (root / "raw/holdout.txt").write_text("A story never trained on.", "utf-8")
    json_list(root / "verbmem/forget.json", [{"prompt": "The mayor", "gt": "opened the bridge"}])
    if knowmem:
        forget_qa = [{"question": "Who opened it?", "answer": "The mayor"}]
        json_list(root / "knowmem/forget_qa.json", forget_qa)
        json_list(
            root / "knowmem/retain_qa.json", [{"question": "Who met?", "answer": "The council"}]
        )
        json_list(root / "knowmem/retain_qa_icl.json", ICL)
    return root


def test_muse_raw_text_knowmem_and_verbmem_become_passages_and_probes(tmp_path):
    out = tmp_path / "data"
    src = muse_copy(tmp_path / "muse")
    result = cli("data", "import", "--format", "muse", src, "--out", out, "--passage-words", "8")
    assert result.exit_code == 0, result.output
    verify_data_folder(out)
    forget = [p["text"] for p in load_passages(out, "forget")]
    assert forget == [*split_passages(FORGET_TEXT, 8), "opened the bridge"]  # raw, verbmem gt
    assert [p["text"] for p in load_passages(out, "retain")] == ["The council met.\n\nTaxes rose."]
    assert [p["text"] for p in load_passages(out, "holdout")] == ["A story never trained on."]
    assert "Evaluation-only" not in (out / "passages.jsonl").read_text()  # retain2: eval only
    assert "raw/retain2.txt" in result.output
    assert [r["answer"] for r in load_qa(out, "forget")] == ["The mayor"]
    data = load_eval_data(out)
    shots = "Question: Who opened the old bridge?\nAnswer: The king\n\n"
    assert data.qa["forget"][0].prompt == shots + "Question: Who opened it?\nAnswer:"
    assert data.qa["retain"][0].prompt.startswith(shots)
    assert data.passages["holdout"] and data.passages["forget"]  # what MIA (mia_auc) compares


def muse_hub_copy(root):
    """muse_copy's contents as MUSE's hub repository lays them out: one Parquet shard a table,
    raw text as records of `text`."""
    shard = "-00000-of-00001.parquet"
    raw = {"forget": FORGET_TEXT, "retain1": "The council met.\n\nTaxes rose."}
    raw["holdout"] = "A story never trained on."
    for name, text in raw.items():
        parquet(root / f"raw/{name}{shard}", [{"text": text}])
    parquet(root / f"verbmem/forget{shard}", [{"prompt": "The mayor", "gt": "opened the bridge"}])
    parquet(
        root / f"knowmem/forget_qa{shard}", [{"question": "Who opened it?", "answer": "The mayor"}]
    )
    parquet(root / f"knowmem/retain_qa{shard}", [{"question": "Who met?", "answer": "The council"}])
    parquet(root / f"knowmem/retain_qa_icl{shard}", ICL)
    return root


def test_a_muse_hub_name_imports_the_hubs_parquet_shards_as_the_github_copy(tmp_path, monkeypatch):
    import huggingface_hub

    hub_files = muse_hub_copy(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(hub_files))
    args = ("--format", "muse", "--passage-words", "8", "--out")
    result = cli("data", "import", "muse-bench/MUSE-News", *args, tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert cli("data", "import", muse_copy(tmp_path / "gh"), *args, tmp_path / "b").exit_code == 0
    assert contents(tmp_path / "a") == contents(tmp_path / "b")
    assert load_eval_data(tmp_path / "a").qa["forget"][0].prompt.startswith("Question: Who opened")


def test_split_passages_cuts_windows_of_words_that_are_excerpts_of_the_text():
    passages = split_passages(FORGET_TEXT, 8)
    assert passages[0] == "The mayor opened the bridge on Monday.\n\nw0"  # line breaks kept
    assert all(p in FORGET_TEXT for p in passages)
    assert [len(p.split()) for p in passages] == [8, 8, 8, 7]
    assert " ".join(passages).split() == FORGET_TEXT.split()  # every word, in order, once


# --- the user's own files -----------------------------------------------------------------------

FACTS = [
    {"question": f"Where does {p} live?", "answer": c}
    for p, c in zip(tiny.PEOPLE, tiny.CITIES, strict=False)
]


def user_folder(root):
    jsonl(root / "forget.jsonl", FACTS[:2] + [{"text": "ada keeps bees in paris"}])
    (root / "forget_notes.txt").write_text("bo sails.\n\nbo paints.", "utf-8")
    rows = "".join(f"{r['question']},{r['answer']}\n" for r in FACTS[2:6])
    (root / "retain.csv").write_text("question,answer\n" + rows, "utf-8")
    json_list(root / "holdout.json", FACTS[6:] + [{"text": "kai was never trained on"}])
    return root


def contents(out):
    """What a folder holds, by split, whatever its entity names."""
    qa = {(r["split"], r["question"], r["answer"]) for r in load_qa(out)}
    return qa, {(p["split"], p["text"]) for p in load_passages(out)}


def test_your_files_from_a_folder_or_from_flags_make_the_same_data(tmp_path):
    src = user_folder(tmp_path / "mine")
    by_folder, by_flags = tmp_path / "a", tmp_path / "b"
    assert cli("data", "import", "--format", "qa", src, "--out", by_folder).exit_code == 0
    flags = ["--forget", src / "forget.jsonl", "--forget", src / "forget_notes.txt"]
    flags += ["--retain", src / "retain.csv", "--holdout", src / "holdout.json"]
    result = cli("data", "import", "--format", "text", *flags, "--out", by_flags)
    assert result.exit_code == 0, result.output
    assert contents(by_folder) == contents(by_flags)
    qa, passages = contents(by_folder)
    assert ("forget", "Where does ada live?", "paris") in qa
    assert ("retain", "Where does cy live?", "oslo") in qa
    assert ("holdout", "Where does gus live?", "quito") in qa
    assert ("forget", "bo sails.\n\nbo paints.") in passages
    assert ("holdout", "kai was never trained on") in passages
    forget, retain = load_unlearning_sets(by_folder)
    assert (len(forget), len(retain)) == (4, 4)  # 2 questions + 2 passages; 4 questions
    assert load_eval_data(by_folder).qa["holdout"]  # em_holdout, the chance level


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """The tiny model, which knows "ada lives in paris" and the like; the same facts imported
    as a data folder asked through the template "{question}", and as prompt,completion files
    (the route without a folder), which ask them alike."""
    root = tmp_path_factory.mktemp("tiny")
    tiny.trained_model().save_pretrained(root / "model")
    tiny.tokenizer().save_pretrained(root / "model")
    forget, retain = tiny.split()
    for name, examples in (("forget", forget), ("retain", retain)):
        rows = [{"question": e.prompt, "answer": e.target.strip()} for e in examples]
        jsonl(root / f"src/{name}.jsonl", rows)
        rows = [{"prompt": e.prompt, "completion": e.target} for e in examples]
        jsonl(root / f"files/{name}.jsonl", rows)
    args = ["data", "import", "--format", "qa", root / "src", "--out", root / "data"]
    assert cli(*args, "--question-template", "{question}").exit_code == 0
    return root


def test_evaluate_scores_an_imported_folder_as_it_scores_the_same_files(tiny_world):
    scores = {}
    files = tiny_world / "files"
    for name, source in (
        ("folder", ["--data", tiny_world / "data"]),
        ("files", ["--forget", files / "forget.jsonl", "--retain", files / "retain.jsonl"]),
    ):
        json_path = tiny_world / f"{name}.json"
        args = ["evaluate", tiny_world / "model", *source, "--quant", "fp", "--json", json_path]
        result = cli(*args)
        assert result.exit_code == 0, result.output
        scores[name] = json.loads(json_path.read_text())["results"]["fp"]
    assert scores["folder"]["knowmem_forget"] > 0  # (the tiny model answers on past the fact)
    for metric in ("knowmem_forget", "em_forget", "knowmem_retain", "em_retain"):
        assert scores["folder"][metric] == scores["files"][metric]


def test_unlearn_and_run_read_an_imported_folder(tiny_world, tmp_path):
    data, model = tiny_world / "data", tiny_world / "model"
    forget, retain = load_unlearning_sets(data)
    out = tmp_path / "unlearned"
    args = ["unlearn", "--model", model, "--data", data, "--out", out, "--method", "ga_gdr"]
    result = cli(*args, "steps=2", "batch_size=2", "progress=false")
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert (run["n_forget"], run["n_retain"]) == (len(forget), len(retain)) == (4, 20)
    config = tmp_path / "study.yaml"
    config.write_text(
        f"base: {model}\ndata: {data}\nspecs: [fp]\neval_limit: 4\nmethods: [ga_gdr]\n"
        "unlearn: {steps: 2, lr: 1.0e-3, batch_size: 2, progress: false}\n"
    )
    result = cli("run", config, "--out", tmp_path / "study")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "study/results.json").read_text())
    assert results["data"] == str(data)
    assert {"knowmem_forget", "knowmem_retain"} <= results["methods"]["ga_gdr"]["metrics"][
        "fp"
    ].keys()


# --- bad input ----------------------------------------------------------------------------------


def tofu_forget01(src):
    tofu_copy(src, splits=("forget01",), with_perturbed=False)


def bad_line(src):
    tofu_forget01(src)
    with open(src / "forget01.json", "a", encoding="utf-8") as f:
        f.write('{"question": "broken\n')


def write_file(name, text, data=b""):
    def setup(src):
        src.mkdir(parents=True, exist_ok=True)
        if data:
            (src / name).write_bytes(data)
        else:
            (src / name).write_text(text, "utf-8")

    return setup


def records(name, rows):
    return lambda src: jsonl(src / name, rows)


QA = [{"question": "Where does ada live?", "answer": "paris"}]


def both(*setups):
    def setup(src):
        for s in setups:
            s(src)

    return setup


def case(name, setup, args, message):
    return pytest.param(setup, args, message, id=name)


PERTURBED_STRING = [AUTHORS[-1] | {"perturbed_answer": "Poems."}]
PICKLE = write_file("forget.pkl", "", b"\x80\x04K\x01.")
CASES = [
    case("unknown format", tofu_forget01, ["--format", "squad", "SRC"], "unknown format 'squad'"),
    case("not a folder", tofu_forget01, ["--format", "tofu", "SRC/forget01.json"], "not a folder"),
    case(
        "unknown split",
        tofu_forget01,
        ["--format", "tofu", "SRC", "--split", "forget20"],
        "unknown TOFU split",
    ),
    case(
        "split not there",
        tofu_forget01,
        ["--format", "tofu", "SRC", "--split", "forget05"],
        "holds no forget05.json",
    ),
    case(
        "no tofu files",
        records("full.json", QA),
        ["--format", "tofu", "SRC"],
        "holds no forget01, forget05 or forget10",
    ),
    case("malformed line", bad_line, ["--format", "tofu", "SRC"], "forget01.json:2: malformed"),
    case(
        "no answer",
        records("forget01.json", [{"question": "Who?"}]),
        ["--format", "tofu", "SRC"],
        "record 1: no answer column",
    ),
    case(
        "perturbed not a list",
        both(tofu_forget01, records("forget01_perturbed.json", PERTURBED_STRING)),
        ["--format", "tofu", "SRC"],
        "perturbed_answer must be a list",
    ),
    case(
        "muse without knowmem",
        lambda src: muse_copy(src, knowmem=False),
        ["--format", "muse", "SRC"],
        "no question,answer probes",
    ),
    case(
        "prompt,completion",
        records("forget.jsonl", [{"prompt": "ada lives in", "completion": " paris"}]),
        ["--format", "qa", "SRC"],
        "keep a prompt of their own",
    ),
    case(
        "messages",
        records("forget.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}]),
        ["--format", "qa", "SRC"],
        "keep a prompt of their own",
    ),
    case(
        "qa of text only",
        both(
            records("forget.jsonl", [{"text": "ada lives in paris"}]), records("retain.jsonl", QA)
        ),
        ["--format", "qa", "SRC"],
        "--format qa: the forget files hold no question,answer",
    ),
    case(
        "text without probes",
        write_file("forget.txt", "ada lives in paris"),
        ["--format", "text", "SRC"],
        "no question,answer probes",
    ),
    case(
        "in both sets",
        both(records("forget.jsonl", QA), records("retain.jsonl", QA)),
        ["--format", "qa", "SRC"],
        "forget and retain share 1 example",
    ),
    case(
        "a pickle",
        PICKLE,
        ["--format", "qa", "--forget", "SRC/forget.pkl"],
        "unsupported file type",
    ),
    case("only a pickle in SRC", PICKLE, ["--format", "qa", "SRC"], "holds no forget file"),
    case(
        "SRC and flags",
        records("forget.jsonl", QA),
        ["--format", "qa", "SRC", "--forget", "SRC/forget.jsonl"],
        "not both",
    ),
    case(
        "retain alone",
        records("retain.jsonl", QA),
        ["--format", "qa", "--retain", "SRC/retain.jsonl"],
        "go with --forget",
    ),
    case(
        "split with qa",
        records("forget.jsonl", QA),
        ["--format", "qa", "SRC", "--split", "forget01"],
        "--split picks a TOFU forget set",
    ),
    case(
        "template without question",
        records("forget.jsonl", QA),
        ["--format", "qa", "SRC", "--question-template", "Q:"],
        "has no {question}",
    ),
    case(
        "no passage words",
        records("forget.jsonl", QA),
        ["--format", "qa", "SRC", "--passage-words", "0"],
        "--passage-words must be at least 1",
    ),
    case(
        "not UTF-8",
        both(records("forget_qa.jsonl", QA), write_file("forget.txt", "", b"caf\xe9\n")),
        ["--format", "text", "SRC"],
        "not UTF-8",
    ),
]


@pytest.mark.parametrize(("setup", "args", "message"), CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, setup, args, message):
    src = tmp_path / "src"
    setup(src)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [str(a).replace("SRC", str(src)) for a in args]
    result = cli("data", "import", *args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_an_older_data_folder_is_replaced_and_any_other_folder_kept(tmp_path):
    src, out = tofu_copy(tmp_path / "tofu"), tmp_path / "data"
    assert cli("data", "import", "--format", "tofu", src, "--out", out).exit_code == 0
    args = ["data", "import", "--format", "tofu", src, "--out", out, "--split", "forget01"]
    assert cli(*args).exit_code == 0
    assert load_manifest(out)["split"] == "forget01"
    kept = tmp_path / "mine"
    (kept / "notes.txt").parent.mkdir()
    (kept / "notes.txt").write_text("mine")
    result = cli("data", "import", "--format", "tofu", src, "--out", kept)
    assert result.exit_code == 2 and "is not a quail data folder" in result.output
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_the_question_template_becomes_the_folders_question_format(tmp_path):
    out = tmp_path / "data"
    options = ImportOptions(question_template="[INST] {question} [/INST]")
    import_data("tofu", tofu_copy(tmp_path / "tofu"), out, options)
    forget, _ = load_unlearning_sets(out)
    assert forget[0].prompt == "[INST] What does author 6 write? [/INST]"
    assert load_manifest(out)["question_format"] == options.question_template
