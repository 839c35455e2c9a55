"""The built-in benchmark: byte-stable builds, the documented schema, disjoint splits, and
one-line errors on broken user data."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quail.cli import app
from quail.data import (
    Example,
    build_dataset,
    format_question,
    load_claim_sets,
    load_claims,
    load_entities,
    load_heldout_general,
    load_manifest,
    load_passages,
    load_qa,
    load_unlearning_sets,
    load_unseen,
)
from quail.data.build import FILES
from quail.data.jsonl import dumps
from quail.errors import QuailError

SCHEMA = {
    "entities.jsonl": ["id", "kind", "name", "attributes", "split"],
    "passages.jsonl": ["id", "entity_id", "split", "template", "text"],
    "qa.jsonl": ["id", "entity_id", "split", "attribute", "question", "answer", "paraphrase"],
    "claims.jsonl": ["id", "text", "label", "split", "campaign"],
}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("data") / "small", seed=0, size="small")


@pytest.fixture
def copy(small, tmp_path) -> Path:
    """A writable copy of the small data set, for corrupting."""
    out = tmp_path / "copy"
    out.mkdir()
    for f in small.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return out


def test_same_seed_gives_same_bytes_and_other_seed_differs(small, tmp_path):
    again = build_dataset(tmp_path / "again", seed=0, size="small")
    other = build_dataset(tmp_path / "other", seed=1, size="small")
    for name in (*FILES, "manifest.json"):
        assert (again / name).read_bytes() == (small / name).read_bytes(), name
    assert (other / "entities.jsonl").read_bytes() != (small / "entities.jsonl").read_bytes()


def test_rebuild_replaces_a_data_folder_but_not_a_foreign_one(small, tmp_path):
    out = build_dataset(tmp_path / "d", seed=1, size="small")
    build_dataset(out, seed=0, size="small")
    assert (out / "qa.jsonl").read_bytes() == (small / "qa.jsonl").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(QuailError, match="not a quail data folder"):
        build_dataset(foreign, size="small")
    assert (foreign / "notes.txt").read_text() == "mine"


def test_schema_round_trip_and_manifest(small):
    manifest = load_manifest(small)
    loaders = {
        "entities.jsonl": load_entities,
        "passages.jsonl": load_passages,
        "qa.jsonl": load_qa,
        "claims.jsonl": load_claims,
    }
    for name, loader in loaders.items():
        records = loader(small)
        assert [list(r) for r in records] == [SCHEMA[name]] * len(records), name
        text = "".join(dumps(r) + "\n" for r in records)
        assert text == (small / name).read_text("utf-8"), name
        assert manifest["counts"][name.removesuffix(".jsonl")] == len(records)
    assert manifest["seed"] == 0 and manifest["size"] == "small"
    assert manifest["labels"] == ["misinformation", "reliable"]
    assert all(isinstance(v, str) for e in load_entities(small) for v in e["attributes"].values())


def test_default_size_has_ten_percent_forget(tmp_path):
    data = build_dataset(tmp_path / "d", size="default")
    entities = load_entities(data)
    share = sum(e["split"] == "forget" for e in entities) / len(entities)
    assert share == pytest.approx(0.10, abs=0.02)
    assert {e["kind"] for e in entities if e["split"] == "forget"} == {"person", "company", "place"}


def test_splits_are_disjoint_by_entity(small):
    ids = {s: {e["id"] for e in load_entities(small, s)} for s in ("forget", "retain", "holdout")}
    assert all(ids.values())
    assert not ids["forget"] & ids["retain"]
    assert not ids["forget"] & ids["holdout"]
    assert not ids["retain"] & ids["holdout"]
    forget, retain = load_unlearning_sets(small)
    assert not set(forget) & set(retain)
    trained_text = " ".join(e.prompt + e.target for e in forget + retain)
    for e in load_entities(small, "holdout"):
        assert e["name"] not in trained_text  # holdout entities are never trained on


def test_the_holdout_entities_are_the_unseen_examples_that_set_the_aims(small, copy):
    unseen = load_unseen(small)
    names = [e["name"] for e in load_entities(small, "holdout")]
    passages = [e.target for e in unseen if not e.prompt]
    assert passages == [p["text"] for p in load_passages(small, "holdout")] and passages
    assert len(unseen) - len(passages) == len(load_qa(small, "holdout", paraphrase=False))
    assert all(any(n in e.prompt + e.target for n in names) for e in unseen)
    (copy / "manifest.json").unlink()  # a user's folder does not say what its model saw
    assert load_unseen(copy) == []


def test_unlearning_sets_hold_passages_and_trained_question_forms(small):
    forget, retain = load_unlearning_sets(small)
    n_forget = len(load_entities(small, "forget"))
    passages = [e for e in forget if e.prompt == ""]
    questions = [e for e in forget if e.prompt]
    assert len(passages) == 3 * n_forget and len(questions) == 8 * n_forget
    first = load_qa(small, "forget", paraphrase=False)[0]
    assert Example(format_question(first["question"]), " " + first["answer"]) in questions
    assert format_question("Who?") == "Question: Who?\nAnswer:"
    held_out = {r["question"] for r in load_qa(small, paraphrase=True)}
    assert held_out and not held_out & {r["question"] for r in load_qa(small, paraphrase=False)}
    assert not any(q in (e.prompt for e in forget + retain) for q in map(format_question, held_out))


def test_claims_forget_one_campaign(small):
    claims = load_claims(small)
    assert {c["label"] for c in claims} == {"misinformation", "reliable"}
    forget = [c for c in claims if c["split"] == "forget"]
    assert forget and {c["campaign"] for c in forget} == {"campaign-0"}
    assert {c["label"] for c in forget} == {"misinformation"}
    others = [c for c in claims if c["split"] != "forget"]
    assert "campaign-0" not in {c["campaign"] for c in others}
    train = {c["text"] for c in claims if c["split"] != "test"}
    test = {c["text"] for c in claims if c["split"] == "test"}
    assert test and not train & test
    f, r = load_claim_sets(small)
    assert f[0].prompt.startswith("Claim: ") and f[0].target == " misinformation"
    assert len(r) == sum(c["split"] == "retain" for c in claims)


def _rewrite(path: Path, edit) -> None:
    lines = path.read_text("utf-8").splitlines()
    path.write_text("\n".join(edit(lines)) + "\n", "utf-8")


def test_malformed_line_names_file_and_line(copy):
    _rewrite(copy / "qa.jsonl", lambda ls: ls[:2] + ['{"id": "broken", '] + ls[2:])
    with pytest.raises(QuailError, match=r"qa\.jsonl:3: malformed JSON"):
        load_unlearning_sets(copy)


def test_missing_column(copy):
    def drop_answer(lines):
        record = json.loads(lines[4])
        del record["answer"]
        return lines[:4] + [json.dumps(record)] + lines[5:]

    _rewrite(copy / "qa.jsonl", drop_answer)
    with pytest.raises(QuailError, match=r"qa\.jsonl:5: missing column\(s\) answer"):
        load_qa(copy)


@pytest.mark.parametrize("name", ["qa.jsonl", "passages.jsonl"])
def test_a_duplicate_id_is_refused(copy, name):
    _rewrite(copy / name, lambda ls: ls + ls[-1:])
    with pytest.raises(QuailError, match=rf"{name}: id .* appears twice"):
        load_unlearning_sets(copy)


def test_heldout_general_text_is_optional_and_checked(copy):
    from quail.evaluation import load_eval_data

    assert (
        load_heldout_general(copy) == [] and load_eval_data(copy).passages["heldout_general"] == []
    )
    (copy / "heldout_general.jsonl").write_text(
        '{"id": "g0", "text": "Plain prose."}\n{"id": "g1"}\n'
    )
    with pytest.raises(QuailError, match=r"general\.jsonl:2: missing column\(s\) text"):
        load_heldout_general(copy)


def _edit_records(path: Path, change) -> None:
    _rewrite(path, lambda lines: [dumps(change(json.loads(line))) for line in lines])


def test_empty_forget_set(copy):
    def no_forget(r):
        return {**r, "split": "retain" if r["split"] == "forget" else r["split"]}

    for name in ("entities.jsonl", "passages.jsonl", "qa.jsonl"):
        _edit_records(copy / name, no_forget)
    with pytest.raises(QuailError, match="forget set is empty"):
        load_unlearning_sets(copy)


def test_forget_overlapping_retain(copy):
    forget_entity = load_entities(copy, "forget")[0]
    with open(copy / "entities.jsonl", "a", encoding="utf-8") as f:
        f.write(dumps({**forget_entity, "split": "retain"}) + "\n")
    with pytest.raises(QuailError, match="both forget and retain"):
        load_unlearning_sets(copy)


def test_forget_sharing_an_example_with_retain(copy):
    retain_passage = load_passages(copy, "retain")[0]
    forget_entity = load_entities(copy, "forget")[0]
    with open(copy / "passages.jsonl", "a", encoding="utf-8") as f:
        copied = {**retain_passage, "id": "dup", "entity_id": forget_entity["id"]}
        f.write(dumps({**copied, "split": "forget"}) + "\n")
    with pytest.raises(QuailError, match="forget and retain share 1 example"):
        load_unlearning_sets(copy)


def test_record_split_must_match_its_entity(copy):
    _edit_records(copy / "qa.jsonl", lambda r: {**r, "split": "retain"})
    with pytest.raises(QuailError, match="splits are by entity"):
        load_qa(copy)


def test_label_outside_declared_set(copy):
    _edit_records(
        copy / "claims.jsonl", lambda r: {**r, "label": "satire"} if r["id"] == "claim-0003" else r
    )
    with pytest.raises(QuailError, match="label 'satire' is not one of misinformation, reliable"):
        load_claims(copy)


def test_a_user_folder_needs_no_manifest(copy):
    (copy / "manifest.json").unlink()
    forget, _ = load_unlearning_sets(copy)
    assert forget[-1].prompt.startswith("Question: ")
    assert {c["label"] for c in load_claims(copy)} == {"misinformation", "reliable"}


def test_cli_build_and_one_line_error(tmp_path, copy, monkeypatch):
    monkeypatch.setenv("QUAIL_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    result = runner.invoke(app, ["data", "build", "--out", str(tmp_path / "d"), "--size", "small"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "manifest.json").is_file()
    result = runner.invoke(app, ["data", "build", "--out", str(tmp_path / "e"), "--size", "huge"])
    assert result.exit_code == 2
    _rewrite(copy / "qa.jsonl", lambda ls: ls[:1] + ["not json"] + ls[1:])
    result = runner.invoke(app, ["base", "--data", str(copy), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "qa.jsonl:2: malformed JSON" in result.output
    assert not (tmp_path / "m").exists()
