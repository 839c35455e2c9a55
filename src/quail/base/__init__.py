"""The built-in models: a small Llama that knows the world's facts, and a claims classifier."""

from quail.base.cache import cache_key, cached_model, write_base_model
from quail.base.config import BASE_CONFIG, CLASSIFIER_CONFIG, BaseConfig
from quail.base.train import read_metadata, train_base_model, train_claims_classifier

__all__ = [
    "BASE_CONFIG",
    "CLASSIFIER_CONFIG",
    "BaseConfig",
    "cache_key",
    "cached_model",
    "read_metadata",
    "train_base_model",
    "train_claims_classifier",
    "write_base_model",
]
