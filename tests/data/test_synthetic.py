"""The synthetic generator: seeded, sized by params, fast, and its text predicts co-consumption."""
import dataclasses
import time

import numpy as np

from pad.data.prepare import prepare
from pad.data.sources.synthetic import generate


def test_seeded_and_sized(data_cfg):
    cfg = data_cfg().synthetic
    a, b = generate(cfg), generate(cfg)
    assert a.interactions.equals(b.interactions) and a.items.equals(b.items)
    c = generate(dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert not c.interactions.equals(a.interactions)
    assert a.items.height == cfg.items and a.interactions["user"].n_unique() == cfg.users
    lengths = a.interactions.group_by("user").len()["len"]
    assert lengths.min() >= cfg.min_len and lengths.max() <= cfg.max_len


def test_default_prepare_is_fast_with_power_law_and_cold_items(data_cfg):
    start = time.process_time()  # CPU seconds: other jobs on a shared machine do not count
    p = prepare(data_cfg(source="synthetic"))
    assert time.process_time() - start < 2.0 * 3  # < 2 s of wall time alone (up to 2 threads); slack for noise
    m = p.metrics
    assert m["users"] == 3000 and m["items"] == 1200
    sizes = m["bucket_sizes"]
    assert sizes[0] < sizes[-1] / 20  # a few hits carry as much mass as hundreds of cold items
    assert m["zero_freq_items"] > 0


def test_titles_of_consecutive_items_share_words_more_than_random_pairs(data_cfg):
    raw = generate(data_cfg().synthetic)
    words = {i: set(t.lower().split()) for i, t in zip(raw.items["item"], raw.items["text"])}
    inter = raw.interactions
    same_user = inter["user"].to_numpy()[1:] == inter["user"].to_numpy()[:-1]
    items = inter["item"].to_list()
    pairs = [(items[k], items[k + 1]) for k in np.flatnonzero(same_user)]
    rng = np.random.default_rng(0)
    random_pairs = [(items[a], items[b]) for a, b in rng.integers(0, len(items), size=(len(pairs), 2))]

    def shared(ps):
        return np.mean([len(words[a] & words[b]) > 0 for a, b in ps])

    assert shared(pairs) > 2 * shared(random_pairs)
