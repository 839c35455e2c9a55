"""Import TOFU, MUSE, or the user's own forget/retain files as a quail data folder.

`quail data import --format tofu|muse|qa|text|claims SRC --out DIR` (docs/DATA.md, "Importing TOFU,
MUSE, or your own files"). Importers read local files (JSON, JSON lines, CSV, Parquet, plain
text; never pickle; TOFU and MUSE by hub name are downloaded first: `hub_copy`), check
everything before anything is written, and hand the records to
`write_data_folder`, the one writer of the layout: the folder appears whole or not at all, and
`unlearn`, `evaluate` and `run` read it as they read a built one.

Each source file becomes one entity (neither TOFU's nor MUSE's files name their entities), and
its passages and probes take its split, so every record's split is its entity's by construction.
The claims format (text,label records: quail.data.classification) writes claims.jsonl instead.
"""

import errno
import re
from dataclasses import dataclass, field
from pathlib import Path

from quail.data.build import write_data_folder
from quail.data.examples import Example
from quail.data.files import SHAPES, read_records
from quail.data.jsonl import read_jsonl
from quail.data.load import check_disjoint, file_sha256, qa_example
from quail.data.render import QUESTION_FORMAT
from quail.errors import QuailError
from quail.io import check_output_dir

FORMATS = ("tofu", "muse", "qa", "text", "claims")
# forget set: its retain set and its holdout set (authors the TOFU model never saw; newer copies)
TOFU_SPLITS = {
    "forget01": ("retain99", "holdout01"),
    "forget05": ("retain95", "holdout05"),
    "forget10": ("retain90", "holdout10"),
}
# evaluation only: their *_perturbed files go to tofu_utility.jsonl, for TOFU's model utility
TOFU_EVAL_ONLY = ("world_facts", "real_authors")
TABLES = (".json", ".jsonl", ".csv", ".parquet")
USER_SUFFIXES = (*TABLES, ".txt")
SPLITS = ("forget", "retain", "holdout")
# Words per passage cut from plain text: about 210 Llama tokens, so a passage fits unlearning's
# default max_length (256 tokens) whole instead of losing its start.
PASSAGE_WORDS = 160
SOURCE = {  # what SRC is, per format
    "tofu": "a local TOFU copy (locuslab/TOFU's forget10.json, retain90.json, ...), or its hub "
    "name",
    "muse": "a local MUSE copy (raw/, knowmem/, verbmem/, as muse_bench's data/news), or its "
    "hub name",
    "qa": "forget.* and retain.* files",
    "text": "forget.* and retain.* files",
    "claims": "forget.*, retain.* and test.* files of text,label records",
}
FIX = {  # what to add when SRC gives nothing to forget or no probes
    "tofu": f"pass the folder of {SOURCE['tofu']}",
    "muse": "add knowmem/forget_qa.json and knowmem/retain_qa.json, as MUSE-News has them",
    "qa": "add question,answer records to the forget file",
    "text": "add question,answer records (e.g. a forget_qa.jsonl beside forget.txt), or give "
    "the files to quail unlearn/evaluate as --forget/--retain, which take passages alone",
}


@dataclass(frozen=True)
class ImportOptions:
    """How SRC is read; each option applies to the formats named."""

    split: str | None = None  # tofu: forget01, forget05 or forget10; None: the largest SRC has
    forget: tuple[Path, ...] = ()  # qa, text: files instead of SRC's forget.*, retain.*, ...
    retain: tuple[Path, ...] = ()
    holdout: tuple[Path, ...] = ()
    test: tuple[Path, ...] = ()  # claims: held-out text,label records
    passage_words: int = PASSAGE_WORDS  # muse, qa, text: .txt text is cut into passages
    question_template: str | None = None  # the folder's question_format ({question} in it)


@dataclass
class Folder:
    """The records an importer collects, with what SRC lacked (`missing`) and the files it holds
    that a data folder has no place for (`skipped`)."""

    entities: list[dict] = field(default_factory=list)
    passages: list[dict] = field(default_factory=list)
    qa: list[dict] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # file read: its sha256
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)  # what the format adds (split, question_format)
    splits: dict[str, str] = field(default_factory=dict)  # entity id: its split
    utility: list[dict] = field(default_factory=list)  # TOFU's real authors and world facts
    counts: dict[str, int] = field(default_factory=dict)  # entity id: its passages so far

    def entity(self, path: Path, name: str, split: str) -> str:
        """A new entity for the source file `path`, shown as `name`; returns its id."""
        eid = f"{split}-{sum(s == split for s in self.splits.values())}"
        self.entities.append(
            {"id": eid, "kind": "source", "name": name, "attributes": {}, "split": split}
        )
        self.splits[eid], self.counts[eid] = split, 0
        self.sources[name] = file_sha256(path)
        return eid

    def passage(self, eid: str, text: str) -> None:
        number = self.counts[eid]
        self.counts[eid] += 1
        self.passages.append(
            {
                "id": f"{eid}-p{number}",
                "entity_id": eid,
                "split": self.splits[eid],
                "template": number,  # its place in the source file
                "text": text,
            }
        )

    def probe(
        self, eid: str, attribute: str, question: str, answer: str, paraphrase=False, **extra
    ) -> None:
        """A QA record; `extra` (TOFU's paraphrased and perturbed answers) rides along after
        the schema's columns, which loaders check and otherwise leave alone."""
        self.qa.append(
            {
                "id": f"{eid}-q{len(self.qa)}",
                "entity_id": eid,
                "split": self.splits[eid],
                "attribute": attribute,
                "question": question,
                "answer": answer,
                "paraphrase": paraphrase,
                **extra,
            }
        )


@dataclass
class Imported:
    """What an import read: the data folder's records and manifest fields, and what SRC lacked
    or held without a place in the folder (for the one-line notes the CLI prints)."""

    records: dict[str, list[dict]]
    manifest: dict
    missing: list[str]
    skipped: list[str]


def import_data(
    fmt: str, src: str | Path | None, out: str | Path, options: ImportOptions = ImportOptions()
) -> Imported:
    """Read SRC in `fmt` and write the data folder `out` (replacing an older data folder, never
    another non-empty folder). Every check runs before the first byte is written."""
    out = check_data_out(out)
    imported = read_source(fmt, src, options)
    write_data_folder(out, imported.records, imported.manifest)
    return imported


def check_data_out(out: str | Path) -> Path:
    """The rule of `quail data build`: an empty or new folder, or an older data folder."""
    out = check_output_dir(out, overwrite=True)  # a link, a file, a place that cannot be written
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise QuailError(f"{out} exists and is not a quail data folder; pick an empty --out")
    return out


def read_source(fmt: str, src, options: ImportOptions = ImportOptions()) -> Imported:
    """The records of SRC in `fmt`, checked as the loaders will check them; writes nothing."""
    _check_options(fmt, src, options)
    if fmt == "claims":
        return _claims(src, options)
    folder = Folder()
    if fmt == "tofu":
        _tofu(_source_dir(hub_copy(src) or src, fmt), options, folder)
    elif fmt == "muse":
        _muse(_source_dir(hub_copy(src) or src, fmt), options, folder)
    else:
        _user_files(fmt, src, options, folder)
    if options.question_template is not None:
        folder.manifest["question_format"] = options.question_template
    _check_sets(fmt, folder, folder.manifest.get("question_format", QUESTION_FORMAT))
    manifest = {
        "source": fmt,
        **folder.manifest,
        "source_files": folder.sources,
        "missing": folder.missing,
    }
    records = {
        "entities.jsonl": folder.entities,
        "passages.jsonl": folder.passages,
        "qa.jsonl": folder.qa,
    }
    if folder.utility:
        records["tofu_utility.jsonl"] = folder.utility
    return Imported(records, manifest, folder.missing, folder.skipped)


def _check_options(fmt: str, src, options: ImportOptions) -> None:
    if fmt not in FORMATS:
        raise QuailError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    if options.split is not None and fmt != "tofu":
        raise QuailError("--split picks a TOFU forget set: use it with --format tofu")
    if options.split is not None and options.split not in TOFU_SPLITS:
        raise QuailError(f"unknown TOFU split {options.split!r}: use {', '.join(TOFU_SPLITS)}")
    files = options.forget or options.retain or options.holdout or options.test
    if files and fmt not in ("qa", "text", "claims"):
        raise QuailError(f"--forget/--retain/--holdout go with --format qa or text, not {fmt}")
    if options.holdout and fmt == "claims":
        raise QuailError("--format claims holds out a --test set, not --holdout: rename it")
    if options.test and fmt != "claims":
        raise QuailError(f"--test is the claims format's held-out set; {fmt} takes --holdout")
    if files and src is not None:
        raise QuailError("give SRC (a folder of forget.*, retain.*) or --forget FILE, not both")
    if (options.retain or options.holdout or options.test) and not options.forget:
        raise QuailError("--retain, --holdout and --test go with --forget FILE: give it too")
    if src is None and not files:
        also = " (or --forget FILE)" if fmt in ("qa", "text", "claims") else ""
        raise QuailError(f"give SRC, the folder of {SOURCE[fmt]}{also}")
    if options.passage_words < 1:
        raise QuailError(f"--passage-words must be at least 1, got {options.passage_words}")
    template = options.question_template
    if template is not None and "{question}" not in template:
        raise QuailError(f"--question-template {template!r} has no {{question}}; add it")


HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name


def hub_copy(src) -> Path | None:
    """Where SRC is no local path but names a Hugging Face Hub dataset (owner/name: locuslab/TOFU,
    muse-bench/MUSE-News), a local copy of its tables (downloaded once, into the hub's own
    cache); None otherwise. The importers read it as they read a local copy."""
    if src is None or Path(src).exists() or not HUB_NAME.fullmatch(str(src)):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        folder = snapshot_download(
            str(src), repo_type="dataset", allow_patterns=[f"*{s}" for s in TABLES]
        )
    except RepositoryNotFoundError:
        raise QuailError(
            f"{src} is neither a local folder nor a dataset on the Hugging Face Hub: check the "
            "name, or pass the folder of a local copy"
        ) from None
    except Exception as error:  # offline, a proxy, a timeout: the machine, not the input
        raise OSError(
            errno.ENETUNREACH,
            f"could not download the dataset {src} from the Hugging Face Hub "
            f"({type(error).__name__}); download it where the hub is reachable (hf download "
            f"{src} --repo-type dataset --local-dir DIR) and pass DIR",
        ) from None
    return Path(folder)


def _source_dir(src, fmt: str) -> Path:
    path = Path(src)
    if not path.is_dir():
        raise QuailError(f"{src} is not a folder: pass the folder of {SOURCE[fmt]}")
    return path


def _check_sets(fmt: str, folder: Folder, template: str) -> None:
    """What the loaders refuse, refused here first, with the fix for this format."""
    forget, retain = (_examples(folder, split, template) for split in ("forget", "retain"))
    if not forget:
        raise QuailError(
            f"nothing to forget: the source gives no forget text or questions; {FIX[fmt]}"
        )
    if not folder.qa:
        raise QuailError(
            f"no question,answer probes: a data folder needs them (KnowMem); {FIX[fmt]}"
        )
    forget_probes = any(r["split"] == "forget" for r in folder.qa)
    if fmt == "qa" and not forget_probes:
        raise QuailError(
            "--format qa: the forget files hold no question,answer records; for passages use "
            "--format text"
        )
    if fmt == "text" and not any(p["split"] == "forget" for p in folder.passages):
        raise QuailError(
            "--format text: the forget files hold no text; for question,answer records alone "
            "use --format qa"
        )
    check_disjoint(forget, retain)


def _examples(folder: Folder, split: str, template: str) -> list[Example]:
    """The Examples `load_unlearning_sets` will make of one split."""
    passages = [Example("", p["text"]) for p in folder.passages if p["split"] == split]
    probes = [
        qa_example(r, template) for r in folder.qa if r["split"] == split and not r["paraphrase"]
    ]
    return passages + probes


# --- TOFU ----------------------------------------------------------------------------------------


def _tofu(src: Path, options: ImportOptions, folder: Folder) -> None:
    """The chosen forget set, its retain set (each with its *_perturbed extras) and its
    holdout set."""
    split = options.split or next(
        (s for s in reversed(TOFU_SPLITS) if _table(src, s) or _table(src, f"{s}_perturbed")),
        None,
    )
    if split is None:
        raise QuailError(f"{src} holds no forget01, forget05 or forget10 .json: {FIX['tofu']}")
    if not _tofu_set(src, split, f"{split}_perturbed", "forget", folder):
        raise QuailError(
            f"{src} holds no {split}.json (nor {split}_perturbed.json): add it, or pick the "
            "--split it holds"
        )
    retain, holdout = TOFU_SPLITS[split]
    _tofu_set(src, retain, "retain_perturbed", "retain", folder)
    _tofu_set(src, holdout, None, "holdout", folder)
    for stem in TOFU_EVAL_ONLY:
        _tofu_utility(src, stem, folder)
    folder.manifest["split"] = split


def _tofu_set(src: Path, name: str, perturbed: str | None, split: str, folder: Folder) -> bool:
    """One TOFU set: its question,answer records from `name` (else from `perturbed`, which
    repeats them) and, from `perturbed` (if any) where it has the question, the paraphrased
    question (a held-out probe) and the paraphrased and perturbed answers (kept on the record,
    for TOFU's truth ratio). False when SRC has neither file."""
    base, extra = _table(src, name), _table(src, perturbed) if perturbed else None
    folder.missing += [f"{n}.json" for n, p in ((name, base), (perturbed, extra)) if n and not p]
    path = base or extra
    if path is None:
        return False
    eid = folder.entity(path, path.name, split)
    extras = {}
    if extra is not None:
        extras = {r.get("question"): (f"{extra}, record {n}", r) for n, r in _numbered(extra)}
        folder.sources[extra.name] = file_sha256(extra)
    for number, row in _numbered(path):
        where = f"{path}, record {number}"
        question, answer = _text(row, "question", where), _text(row, "answer", where)
        where, more = extras.get(row["question"], (where, {}))
        kept = {}
        if "paraphrased_answer" in more:
            kept["paraphrased_answer"] = _text(more, "paraphrased_answer", where)
        if "perturbed_answer" in more:
            kept["perturbed_answer"] = _texts(more["perturbed_answer"], "perturbed_answer", where)
        folder.probe(eid, name, question, answer, **kept)
        if "paraphrased_question" in more:
            paraphrase = _text(more, "paraphrased_question", where)
            folder.probe(eid, name, paraphrase, answer, paraphrase=True)
    return True


def _tofu_utility(src: Path, stem: str, folder: Folder) -> None:
    """Real authors or world facts with their perturbed answers, for model utility only: in no
    split, so nothing trains on them. Without the perturbed file they are not imported."""
    plain, path = _table(src, stem), _table(src, f"{stem}_perturbed")
    if path is None:
        folder.skipped += [plain.name] if plain else []
        return
    folder.sources[path.name] = file_sha256(path)
    for number, row in _numbered(path):
        where = f"{path}, record {number}"
        folder.utility.append(
            {
                "id": f"{stem}-{number}",
                "set": stem,
                "question": _text(row, "question", where),
                "answer": _text(row, "answer", where),
                "perturbed_answer": _texts(row.get("perturbed_answer"), "perturbed_answer", where),
            }
        )


def _numbered(path: Path) -> list[tuple[int, dict]]:
    return list(enumerate(_rows(path), start=1))


# --- MUSE ----------------------------------------------------------------------------------------


def _muse(src: Path, options: ImportOptions, folder: Folder) -> None:
    """Raw text as passages (forget, retain1 as retain, holdout), knowmem QA as probes, each
    verbmem continuation as a forget passage, and the retain ICL shots as the question format
    (MUSE's own few-shot prompt)."""
    words = options.passage_words
    _muse_text(src, "raw/forget.txt", "forget", words, folder)
    verbmem = _muse_table(src, "verbmem/forget", folder)
    if verbmem is not None:
        eid = folder.entity(verbmem, _name(verbmem, src), "forget")
        for number, row in _numbered(verbmem):
            folder.passage(eid, _text(row, "gt", f"{verbmem}, record {number}"))
    _muse_qa(src, "knowmem/forget_qa", "forget", folder)
    _muse_text(src, "raw/retain1.txt", "retain", words, folder)
    _muse_qa(src, "knowmem/retain_qa", "retain", folder)
    _muse_text(src, "raw/holdout.txt", "holdout", words, folder)
    icl = _muse_table(src, "knowmem/retain_qa_icl", folder)
    if icl is not None:
        shots = []
        for number, row in _numbered(icl):
            where = f"{icl}, record {number}"
            shots.append(f"Question: {_text(row, 'question', where)}\n")
            shots.append(f"Answer: {_text(row, 'answer', where)}\n\n")
        folder.sources[_name(icl, src)] = file_sha256(icl)
        folder.manifest["question_format"] = "".join(shots) + QUESTION_FORMAT
    unused = ("raw/retain2.txt", "knowmem/forget_qa_icl.json", "privleak")
    folder.skipped += [name for name in unused if (src / name).exists()]
    folder.manifest["passage_words"] = words


def _muse_text(src: Path, name: str, split: str, words: int, folder: Folder) -> None:
    """The GitHub copy's raw text file, or the hub copy's table of it (one document a record,
    in `text`), as passages of `words` words."""
    if (src / name).is_file():
        _text_file(src / name, name, split, words, folder)
    elif (table := _table(src, name.removesuffix(".txt"))) is not None:
        eid = folder.entity(table, _name(table, src), split)
        for number, row in _numbered(table):
            for passage in split_passages(_text(row, "text", f"{table}, record {number}"), words):
                folder.passage(eid, passage)
    else:
        folder.missing.append(name)


def _muse_table(src: Path, stem: str, folder: Folder) -> Path | None:
    path = _table(src, stem)
    if path is None:
        folder.missing.append(f"{stem}.json")
    return path


def _muse_qa(src: Path, stem: str, split: str, folder: Folder) -> None:
    path = _muse_table(src, stem, folder)
    if path is None:
        return
    eid = folder.entity(path, _name(path, src), split)
    for number, row in _numbered(path):
        where = f"{path}, record {number}"
        question, answer = _text(row, "question", where), _text(row, "answer", where)
        folder.probe(eid, Path(stem).name, question, answer)


def _name(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# --- the user's own files (qa, text) -------------------------------------------------------------


def _user_files(fmt: str, src, options: ImportOptions, folder: Folder) -> None:
    """Files by split: --forget/--retain/--holdout, or SRC's forget.*, forget_*.*, retain.*, ...
    Records of question,answer become probes and of text passages; .txt files become passages
    of `passage_words` words."""
    sides = {"forget": options.forget, "retain": options.retain, "holdout": options.holdout}
    names = {}
    if src is not None:
        root = _source_dir(src, fmt)
        sides = {split: _split_files(root, split) for split in SPLITS}
        names = {p: _name(p, root) for paths in sides.values() for p in paths}
        if not sides["forget"]:
            raise QuailError(
                f"{src} holds no forget file: name it forget.jsonl (or .json, .csv, .parquet, "
                ".txt; forget_<name>.<ext> for more files)"
            )
    if not sides["retain"]:
        folder.missing.append("a retain file (retain.*)")
    for split, paths in sides.items():
        for path in map(Path, paths):
            name = names.get(path, str(path))
            if path.suffix not in USER_SUFFIXES:
                raise QuailError(
                    f"{path}: unsupported file type; use {', '.join(USER_SUFFIXES)} (no pickles)"
                )
            if path.suffix == ".txt":
                _text_file(path, name, split, options.passage_words, folder)
                folder.manifest["passage_words"] = options.passage_words
            else:
                _records_file(path, name, split, folder)


def _split_files(root: Path, split: str, suffixes=USER_SUFFIXES) -> list[Path]:
    """SRC's files of one split: `split.EXT` and `split_*.EXT`, in name order."""
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file()
        and p.suffix in suffixes
        and (p.stem == split or p.stem.startswith(f"{split}_"))
    )


def _records_file(path: Path, name: str, split: str, folder: Folder) -> None:
    records = read_records(path)
    if not records:
        raise QuailError(f"{path}: no records; the file needs one example per line or row")
    eid = folder.entity(path, name, split)
    for number, record in enumerate(records, start=1):
        where = f"{path}, record {number}"
        shape = next((s for s in SHAPES if all(c in record for c in s)), None)
        if shape == ("question", "answer"):
            question, answer = _text(record, "question", where), _text(record, "answer", where)
            folder.probe(eid, path.stem, question, answer)
        elif shape == ("text",):
            folder.passage(eid, _text(record, "text", where))
        elif shape is None:
            raise QuailError(
                f"{where}: columns {', '.join(sorted(record)) or 'none'}; give question,answer "
                "or text"
            )
        else:
            raise QuailError(
                f"{where}: {','.join(shape)} records keep a prompt of their own, and a data "
                "folder asks every question through one template: write question,answer "
                "records, or give the file to quail unlearn/evaluate as --forget/--retain"
            )


# --- the user's own classification files (claims) -------------------------------------------------


def _claims(src, options: ImportOptions) -> Imported:
    """claims.jsonl of text,label records: --forget/--retain/--test, or SRC's forget.*,
    retain.*, test.* (and forget_*.*, ...), as quail.data.classification checks them."""
    from quail.data.classification import SPLITS, claim_records, labels_of, load_classification

    paths = {"forget": options.forget, "retain": options.retain, "test": options.test}
    if src is not None:
        root = _source_dir(src, "claims")
        paths = {split: _split_files(root, split, TABLES) for split in SPLITS}
    paths = {split: [Path(p) for p in files] for split, files in paths.items()}
    for path in (p for files in paths.values() for p in files):
        if path.suffix not in TABLES:
            raise QuailError(f"{path}: unsupported file type; use {', '.join(TABLES)} (no pickles)")
    sets = load_classification(paths)
    missing = [] if paths["test"] else ["a test file (test.*)"]
    manifest = {
        "source": "claims",
        "labels": labels_of(sets),
        "source_files": {str(p): file_sha256(p) for files in paths.values() for p in files},
        "missing": missing,
    }
    return Imported({"claims.jsonl": claim_records(sets)}, manifest, missing, [])


# --- reading -------------------------------------------------------------------------------------


def _text_file(path: Path, name: str, split: str, words: int, folder: Folder) -> None:
    """A plain-text file as one entity's passages of `words` words."""
    text = _read_text(path)
    eid = folder.entity(path, name, split)
    for passage in split_passages(text, words):
        folder.passage(eid, passage)


def split_passages(text: str, words: int) -> list[str]:
    """Consecutive windows of `words` words, each the text from its first word to its last as
    written (line breaks kept): fixed-length chunks, as MUSE cuts its raw text, so the same
    short paragraph in two files never becomes a passage of each."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    return [
        text[spans[i][0] : spans[min(i + words, len(spans)) - 1][1]]
        for i in range(0, len(spans), words)
    ]


def _table(root: Path, stem: str) -> Path | None:
    """`root/stem` with the first table ending it exists with, or the hub's single Parquet
    shard of it (`stem-00000-of-00001.parquet`, as MUSE's hub copy names its tables)."""
    found = next((p for s in TABLES if (p := root / f"{stem}{s}").is_file()), None)
    shard = root / f"{stem}-00000-of-00001.parquet"
    return found or (shard if shard.is_file() else None)


def _rows(path: Path) -> list[dict]:
    """A table's records; a .json file of JSON lines (as TOFU ships them) reads as JSONL."""
    if path.suffix == ".json":
        with open(path, "rb") as handle:
            if handle.read(256).lstrip().startswith(b"{"):
                return read_jsonl(path)
    return read_records(path)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise QuailError(f"{path}: no such file; check the path")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise QuailError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    if not text.strip():
        raise QuailError(f"{path}: no text; remove the file or fill it")
    return text


def _text(record: dict, column: str, where: str) -> str:
    if column not in record:
        raise QuailError(f"{where}: no {column} column; every record needs one")
    value = record[column]
    if not isinstance(value, str) or not value.strip():
        raise QuailError(f"{where}: {column} must be non-empty text, got {value!r}")
    return value.strip()


def _texts(value, column: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise QuailError(f"{where}: {column} must be a list of non-empty texts, got {value!r}")
    return [v.strip() for v in value]
