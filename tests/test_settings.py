"""The one config builder every command uses: YAML, key=value, types, unknown keys."""

from dataclasses import dataclass, field

import pytest

from quail.errors import QuailError
from quail.settings import build, read_yaml, with_overrides


@dataclass
class Example:
    steps: int = 10
    lr: float = 1e-5
    fast: bool = False
    quant: str | None = None
    specs: list[str] = field(default_factory=list)
    unlearn: dict = field(default_factory=dict)


def test_overrides_are_read_as_yaml_and_dotted_keys_set_one_entry():
    values = with_overrides(
        {"unlearn": {"lr": 1}},
        ["steps=5", "fast=true", "quant=null", "unlearn.steps=3"],
        nested=("unlearn",),
    )
    assert values == {"unlearn": {"lr": 1, "steps": 3}, "steps": 5, "fast": True, "quant": None}
    assert with_overrides({}, ["a.b=1"]) == {"a.b": 1}  # not a nested mapping: a plain key
    with pytest.raises(QuailError, match="not key=value"):
        with_overrides({}, ["steps"])


def test_values_are_checked_and_widened_to_their_field_types():
    config = build(Example, {"lr": "1e-4", "steps": 3, "fast": "False", "specs": "fp, int4"})
    assert config.lr == 1e-4 and config.steps == 3 and config.fast is False
    assert config.specs == ["fp", "int4"]
    assert build(Example, {"unlearn": None}).unlearn == {}  # an empty `unlearn:` line
    for values, problem in [
        ({"steps": "many"}, "config key 'steps' must be int"),
        ({"steps": True}, "'steps' must be int"),  # a bool is not a number of steps
        ({"lr": "fast"}, "'lr' must be float"),
        ({"specs": [4]}, "'specs' must be a list of strings"),
        ({"unlearn": [1]}, "'unlearn' must be a mapping"),
        ({"quant": 4}, "'quant' must be str"),
    ]:
        with pytest.raises(QuailError, match=problem):
            build(Example, values)


def test_an_unknown_key_is_named_with_the_closest_known_one():
    with pytest.raises(QuailError, match="unknown setting 'stesp'; did you mean 'steps'"):
        build(Example, {"stesp": 3}, "setting")
    with pytest.raises(QuailError, match="unknown config key 'colour'; known keys: fast, lr"):
        build(Example, {"colour": 3})


def test_every_command_builds_its_config_the_same_way():
    from quail.countries import inject_config
    from quail.study.config import study_config
    from quail.unlearning import make_config

    for make, typo, meant in [
        (make_config, "stpes", "steps"),
        (lambda v: study_config({"methods": ["ga"], **v}), "eval_limt", "eval_limit"),
        (inject_config, "snap_sclae", "snap_scale"),
    ]:
        with pytest.raises(QuailError, match=f"'{typo}'; did you mean '{meant}'"):
            make({typo: 3})
    study = study_config({"methods": "ga"}, ["specs=fp,int4", "unlearn.lr=0.0001"])
    assert study.specs == ["fp", "rtn-int4-g64-sym"] and study.unlearn == {"lr": 1e-4}
    assert [run.method for run in study.methods] == ["ga"]


def test_yaml_files_give_one_line_errors(tmp_path):
    path = tmp_path / "run.yaml"
    with pytest.raises(QuailError, match="does not exist"):
        read_yaml(path)
    path.write_text("steps: [1,\n")
    with pytest.raises(QuailError, match="not valid YAML") as err:
        read_yaml(path)
    assert "\n" not in str(err.value)
    path.write_text("- steps\n")
    with pytest.raises(QuailError, match="must hold a mapping"):
        read_yaml(path)
    path.write_bytes(b"steps: \xff\xfe\n")
    with pytest.raises(QuailError, match="not valid YAML"):
        read_yaml(path)
    path.write_text("steps: 3\n")
    assert read_yaml(path) == {"steps": 3}
