"""The study: unlearn with each method, analyze, evaluate at every precision, report."""

from quail.study.config import MethodRun, StudyConfig, load_study_config, study_config
from quail.study.run import run_study

__all__ = ["MethodRun", "StudyConfig", "load_study_config", "run_study", "study_config"]
