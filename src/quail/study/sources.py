"""Where a study's data and original model come from.

The study's `data:` (or its forget:/retain: files) names a source: the built-in world, the
country task (quail.countries, docs/COUNTRIES.md), a data folder, the user's question or text
files, or their claims files. Each source checks its inputs before the study folder is claimed,
says where its data folder is, and writes it the first time the study needs it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quail.errors import QuailError


def _nothing(*args) -> None:
    """A step this source does not need."""


@dataclass(frozen=True)
class Source:
    folder: Callable  # (config, out) -> the data folder; None: the files are asked as they are
    check: Callable = _nothing  # (config, verify): before the study folder is claimed
    build: Callable = _nothing  # (config, data_dir, log): write the data folder once


def source_name(config) -> str:
    """The key in SOURCES of the study's data."""
    if config.forget:
        return "claims" if config.task == "claims" else "files"
    return config.data if config.data in ("builtin", "countries") else "folder"


def _in_study(config, out: Path) -> Path:
    return out / "data"


def _build_builtin(config, data_dir: Path, log) -> None:
    if not (data_dir / "manifest.json").is_file():
        from quail.data import build_dataset

        log(f"building the built-in data set ({config.data_size}, seed {config.data_seed})")
        build_dataset(data_dir, seed=config.data_seed, size=config.data_size)


def _build_countries(config, data_dir: Path, log) -> None:
    """The facts the base knows of real countries, false capitals for the forget set where the
    study injects them."""
    if not (data_dir / "manifest.json").is_file():
        from quail.countries import build_country_data

        log(f"building the country probes ({config.data_size}, seed {config.data_seed})")
        build_country_data(
            data_dir,
            pretrained(config.base, log),
            misinformation=bool(config.inject),
            size=config.data_size,
            seed=config.data_seed,
            log=log,
        )


def _check_folder(config, verify: bool) -> None:
    """A given data folder, against its manifest (quail.data.verify_data_folder) with `verify`."""
    from quail.data import verify_data_folder

    if verify:
        verify_data_folder(config.data)
    elif not Path(config.data).is_dir():
        raise QuailError(f"data folder {config.data} does not exist: check data: in the config")


def _check_files(config, verify: bool) -> None:
    for path in (config.forget, config.retain, config.test):
        if path and not Path(path).is_file():
            raise QuailError(f"{path}: no such file; check forget:/retain:/test: in the config")


def _claim_files(config):
    """The claims study's forget, retain and test files, as `quail data import` takes them."""
    from quail.data.importers import ImportOptions

    def files(path: str | None) -> tuple[Path, ...]:
        return (Path(path),) if path else ()

    return ImportOptions(
        forget=files(config.forget), retain=files(config.retain), test=files(config.test)
    )


def _check_claims(config, verify: bool) -> None:
    from quail.data.importers import read_source

    _check_files(config, verify)
    read_source("claims", None, _claim_files(config))  # every check, before any work


def _import_claims(config, data_dir: Path, log) -> None:
    """The claims study's text,label files become its data folder."""
    from quail.data.importers import import_data

    log("writing your text,label files as the study's data folder")
    import_data("claims", None, data_dir, _claim_files(config))


SOURCES = {
    "builtin": Source(_in_study, build=_build_builtin),
    "countries": Source(_in_study, build=_build_countries),
    "folder": Source(lambda config, out: Path(config.data), check=_check_folder),
    "files": Source(lambda config, out: None, check=_check_files),  # knowledge: asked as they are
    "claims": Source(_in_study, check=_check_claims, build=_import_claims),
}


def pretrained(base: str, log) -> Path:
    """A model folder, or the name of a packaged model (quail.zoo), converted on first use."""
    from quail.zoo import ZOO, get_model

    if base in ZOO:
        return get_model(base, log=log)
    from quail.models import check_model_dir

    return check_model_dir(base)


def original_dir(config, out: Path) -> Path | None:
    """Where the study keeps its original (injected, or the built-in model); None when the
    original is the given base itself."""
    if config.inject:
        return out / "original"
    return out / "base" if config.base == "builtin" else None


def original_model(config, data_dir: Path, out: Path, log) -> Path:
    """The study's original: the built-in model, a given one, or a given one after the
    misinformation in the forget set was injected into it (`inject`, quail.countries)."""
    folder = original_dir(config, out)
    if folder is None:
        return pretrained(config.base, log)
    if (folder / "config.json").is_file():
        return folder
    if config.inject:
        from quail.countries import inject

        log("injecting the forget set's false claims into the base model")
        inject(pretrained(config.base, log), data_dir, config.inject, folder, log=log)
    else:
        from quail.base import write_base_model

        log("getting the built-in base model (trained once, then cached)")
        write_base_model(data_dir, folder, config.task, log=log)
    return folder
