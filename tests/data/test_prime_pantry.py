"""The real Prime Pantry files (../shared/datasets/prime_pantry): counts and buckets of DESIGN §2."""
import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pad.config import load_section
from pad.data.prepare import prepare

REPO = Path(__file__).resolve().parents[2]
PRIME_PANTRY = (REPO / "../shared/datasets/prime_pantry").resolve()

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PRIME_PANTRY.is_dir(), reason="shared Prime Pantry copy not present")]

DESIGN_EQUAL_MASS_CUTS = [35, 100, 203, 358, 580, 891, 1345, 2055, 3309]
REFERENCE_CODE_CUTS = [35, 100, 205, 361, 585, 898, 1357, 2074, 3348]


@pytest.fixture(scope="module")
def prepared():
    cfg = dataclasses.replace(load_section("data", REPO / "params.yaml"), source="pad_csv",
                              path=str(PRIME_PANTRY), name="Prime_Pantry")
    return prepare(cfg)


def test_counts(prepared):
    m = prepared.metrics
    assert (m["users"], m["items"], m["interactions"]) == (12871, 8347, 115004)
    assert m["repeat_targets"] == {"valid": 454, "test": 336}
    assert m["zero_freq_items"] == 909 and m["empty_texts"] == 0 and m["seq_len"]["max"] == 23


def test_bucket_cuts_are_equal_mass_and_close_to_the_reference(prepared):
    cuts = prepared.metrics["bucket_cuts"]
    assert cuts == DESIGN_EQUAL_MASS_CUTS
    assert all(abs(a - b) <= 40 for a, b in zip(cuts, REFERENCE_CODE_CUTS))
    assert prepared.metrics["bucket_sizes"][0] == 35 and sum(prepared.metrics["bucket_sizes"]) == 8347


def test_train_freq_matches_the_authors_fre_file(prepared):
    fre = pl.read_csv(PRIME_PANTRY / "Prime_Pantry_fre.csv").sort("id")["fre"].to_numpy()
    assert np.array_equal(prepared.items.column("train_freq").to_numpy(), fre[1:])
    assert prepared.items.column("item_id")[0].as_py() == "B00005BPJO"  # item_idx 1 = metadata row 1
