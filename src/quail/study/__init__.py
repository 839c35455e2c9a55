"""The study: unlearn with each method, analyze, evaluate at every precision, report."""

from quail.study.config import MethodRun, StudyConfig, load_study_config, study_config
from quail.study.runner import report_study, run_study

__all__ = [
    "MethodRun",
    "StudyConfig",
    "load_study_config",
    "report_study",
    "run",
    "run_study",
    "study_config",
]


def run(config, out, overrides=(), log=print, overwrite: bool = False) -> dict:
    """Run a study from a StudyConfig, a dict or a YAML path; return the results dict."""
    if isinstance(config, dict):
        config = study_config(config, list(overrides))
    elif not isinstance(config, StudyConfig):
        config = load_study_config(config, list(overrides))
    return run_study(config, out, log=log, overwrite=overwrite)
