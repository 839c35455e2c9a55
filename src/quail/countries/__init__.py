"""Real facts about countries and injected misinformation: the data and the "original" model
of the pretrained-model studies (configs/smollm2-*.yaml, docs/COUNTRIES.md)."""

from quail.countries.build import SIZES, build_country_data
from quail.countries.inject import InjectConfig, inject, inject_config

__all__ = ["SIZES", "InjectConfig", "build_country_data", "inject", "inject_config"]
