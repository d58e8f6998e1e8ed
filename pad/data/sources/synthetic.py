"""Offline synthetic catalogue (DESIGN §2) where text really predicts co-consumption.

Each topic has its own vocabulary of made-up words; an item's title is mostly words of its topic plus
a generic word (so titles of one topic look alike). Item popularity is a power law over a random
permutation (a few hits, many cold items; some never bought). A user holds a preference over topics
that drifts: at each step, with probability `drift`, it moves towards a random new topic. The user's
next item is drawn from a topic sampled from the preference, then by popularity within the topic
(redrawn a few times if the user already has it, so repeats are rare, as in the Amazon data).
So for a cold item the only useful signal is its title's topic words.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from pad.config import SyntheticConfig
from pad.data.sources.common import RawData

_CONSONANTS = list("bcdfghklmnprstvz")
_VOWELS = list("aeiou")
_GENERIC = ["classic", "organic", "family size", "value pack", "original", "light", "premium",
            "fresh", "mini", "extra", "natural", "deluxe", "&amp;", "2 pack", "12 oz", "large"]
_WORDS_PER_TOPIC = 12
_REDRAWS = 4


def _word(rng: np.random.Generator) -> str:
    syllables = rng.integers(2, 4)
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))


def generate(cfg: SyntheticConfig) -> RawData:
    """Interactions of `cfg.users` users over `cfg.items` items, seeded by `cfg.seed`."""
    rng = np.random.default_rng(cfg.seed)
    vocab = [[_word(rng) for _ in range(_WORDS_PER_TOPIC)] for _ in range(cfg.topics)]

    item_topic = rng.integers(0, cfg.topics, size=cfg.items)
    popularity = (1.0 + rng.permutation(cfg.items)) ** -cfg.popularity_exponent
    titles = []
    for i in range(cfg.items):
        words = list(rng.choice(vocab[item_topic[i]], size=rng.integers(2, 5), replace=False))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(_GENERIC)))
        titles.append(" ".join(words).capitalize())
    members = [np.flatnonzero(item_topic == t) for t in range(cfg.topics)]

    pools = [m if len(m) else np.arange(cfg.items) for m in members]
    cums = [np.cumsum(popularity[pool]) for pool in pools]  # within-topic popularity, cumulative

    lengths = _lengths(rng, cfg)
    n = int(lengths.sum())
    drifts, new_topic = rng.random(n) < cfg.drift, rng.integers(0, cfg.topics, size=n)
    items = np.empty(n, dtype=np.int64)
    step = 0
    for length in lengths:
        pref = rng.dirichlet(np.full(cfg.topics, 0.1))  # (topics,) a few favourite topics
        seen: set[int] = set()
        for _ in range(length):
            if drifts[step]:
                pref = 0.5 * pref
                pref[new_topic[step]] += 0.5
            topic = min(int(np.searchsorted(np.cumsum(pref), rng.random())), cfg.topics - 1)
            for _try in range(_REDRAWS):  # mostly new items: a repeat target is a miss when history is excluded
                pick = np.searchsorted(cums[topic], rng.random() * cums[topic][-1])
                item = int(pools[topic][min(pick, len(pools[topic]) - 1)])
                if item not in seen:
                    break
            seen.add(item)
            items[step] = item
            step += 1
    users = np.repeat(np.arange(cfg.users), lengths)
    orders = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)

    width = len(str(cfg.items))
    inter = pl.DataFrame({"user": [f"u{u:0{len(str(cfg.users))}d}" for u in users],
                          "item": [f"i{i:0{width}d}" for i in items], "order": orders})
    catalogue = pl.DataFrame({"item": [f"i{i:0{width}d}" for i in range(cfg.items)], "text": titles})
    return RawData(inter, catalogue, keep_unused_items=True)


def _lengths(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """Sequence lengths in [min_len, max_len], most users short (geometric), like real logs."""
    extra = rng.geometric(p=min(1.0, 3.0 / max(1, cfg.max_len - cfg.min_len + 1)), size=cfg.users) - 1
    return np.minimum(cfg.min_len + extra, cfg.max_len)
