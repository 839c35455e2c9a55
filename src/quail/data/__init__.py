"""Forget/retain/holdout data: the built-in fictitious world and loaders for the user's own."""

from quail.data.build import build_dataset
from quail.data.classification import load_classification
from quail.data.examples import Example
from quail.data.load import (
    claim_example,
    format_claim,
    load_claim_sets,
    load_claim_test,
    load_claims,
    load_entities,
    load_heldout_general,
    load_manifest,
    load_passages,
    load_qa,
    load_unlearning_sets,
    load_unseen,
    qa_example,
    verify_data_folder,
)
from quail.data.render import format_question

__all__ = [
    "Example",
    "build_dataset",
    "claim_example",
    "format_claim",
    "format_question",
    "load_claim_sets",
    "load_claim_test",
    "load_claims",
    "load_classification",
    "load_entities",
    "load_heldout_general",
    "load_manifest",
    "load_passages",
    "load_qa",
    "load_unlearning_sets",
    "load_unseen",
    "qa_example",
    "verify_data_folder",
]
