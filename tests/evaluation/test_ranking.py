"""Full-ranking metrics against hand-computed ranks (ties, history exclusion, repeats, chunking)."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.config import ModelConfig
from pad.evaluation.ranking import RankingSplit, evaluate, evaluate_split, flatten, hit_ndcg, split_ranks, target_ranks
from pad.models import build_id_expert


def test_ranks_by_hand_with_pessimistic_ties():
    # items 1..5; column 0 is padding and never ranked even with the top score
    scores = torch.tensor([[9.0, 0.5, 0.9, 0.9, 0.1, 0.9],
                           [9.0, 0.5, 0.4, 0.3, 0.2, 0.1]])
    ranks = target_ranks(scores, torch.tensor([2, 1]))
    assert ranks.tolist() == [3.0, 1.0]  # user 0: items 3 and 5 tie with item 2 -> counted as ahead


def test_history_exclusion_and_repeat_targets():
    scores = torch.tensor([[0.0, 0.5, 0.9, 0.8, 0.1]])
    history = torch.tensor([[2, 0]])
    assert target_ranks(scores, torch.tensor([3]), history).tolist() == [1.0]  # item 2 removed
    assert target_ranks(scores, torch.tensor([3])).tolist() == [2.0]
    assert target_ranks(scores, torch.tensor([2]), history).tolist() == [math.inf]  # repeat = miss


def test_hit_and_ndcg_values():
    hit, ndcg = hit_ndcg(torch.tensor([1.0, 3.0, 10.0, 11.0, math.inf]), k=10)
    assert hit.tolist() == [1, 1, 1, 0, 0]
    torch.testing.assert_close(ndcg, torch.tensor([1.0, 0.5, 1 / math.log2(11), 0.0, 0.0]))


def _split(n_users=23, n_items=15, length=6):
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(1, n_items + 1, (n_users, length), generator=g)
    inputs[::3, :2] = 0
    targets = torch.randint(1, n_items + 1, (n_users,), generator=g)
    targets[0] = inputs[0, -1]  # one repeat target
    return RankingSplit(inputs, targets, inputs.clone())


def test_chunked_equals_unchunked_and_keys():
    torch.manual_seed(0)
    expert = build_id_expert(ModelConfig("sasrec", 8, 1, 2, 0.0, 6, "ce", 2), 15)
    split = _split()
    whole = split_ranks(expert.eval(), split, user_chunk=1000)
    for chunk in (1, 4, 7):
        for a, b in zip(split_ranks(expert, split, user_chunk=chunk), whole):
            torch.testing.assert_close(a, b)
    buckets = torch.tensor([0] + [1 + (i * 10) // 15 for i in range(15)])
    metrics = flatten(evaluate(expert, {"test": split}, buckets, k=10, user_chunk=5, n_buckets=10))
    for key in ["test.hr_10", "test.ndcg_10", "test.cold.ndcg_10", "test.buckets.10.hr_10",
                "test.unmasked.hr_10", "test.repeat_targets", "test.warm.users"]:
        assert key in metrics
    assert metrics["test.repeat_targets"] >= 1
    masked, unmasked = whole
    assert metrics["test.hr_10"] == round(100 * float((masked <= 10).float().mean()), 4)
    assert metrics["test.unmasked.hr_10"] == round(100 * float((unmasked <= 10).float().mean()), 4)
    groups = sum(metrics[f"test.{g}.users"] for g in ("warm", "median", "cold"))
    assert groups == metrics["test.users"] == 23


def test_masking_removes_exactly_the_history_items_ahead():
    """Per user: the masked rank is inf exactly when the target is a repeat (in the history); otherwise it
    is the unmasked rank minus the distinct history items scoring >= the target (so never worse)."""
    torch.manual_seed(0)
    expert = build_id_expert(ModelConfig("sasrec", 8, 1, 2, 0.0, 6, "ce", 2), 15).eval()
    split = _split()
    masked, unmasked = split_ranks(expert, split, user_chunk=4)
    with torch.no_grad():
        scores = expert.score(expert.encode(split.inputs)[:, -1:])[:, 0]  # (U, N+1)
    repeat = (split.history == split.targets[:, None]).any(1)  # (U,)
    assert repeat.any() and not repeat.all()
    assert torch.equal(torch.isinf(masked), repeat) and torch.isfinite(unmasked).all()
    assert (masked[~repeat] < unmasked[~repeat]).any()  # some history item is ahead: not vacuous
    for u in torch.nonzero(~repeat)[:, 0].tolist():
        t = scores[u, split.targets[u]]
        ahead = {int(h) for h in split.history[u] if h != 0 and scores[u, h] >= t}
        assert unmasked[u] - masked[u] == len(ahead) and 1 <= masked[u] <= unmasked[u]
    metrics = evaluate(expert, {"test": split}, torch.tensor([0] + [1] * 15), k=10, user_chunk=4, n_buckets=1)
    assert metrics["test"]["repeat_targets"] == int(repeat.sum())


def test_perfect_scorer_gets_full_marks():
    class Oracle:
        """Scores the target of each user highest: HR = nDCG = 100%."""

        def __init__(self, targets):
            self.targets = targets

        def encode(self, seqs):
            return seqs[:, :, None].float()  # leading (B, L) so the evaluator can take the last position

        def score(self, query, candidates=None):
            rows = [int(torch.nonzero((split.inputs == query[i, 0, 0].long()).any(1))[0]) for i in range(len(query))]
            out = torch.zeros(len(query), 1, 16)
            out[torch.arange(len(query)), 0, self.targets[rows]] = 1.0
            return out

    split = RankingSplit(torch.arange(1, 6)[:, None], torch.tensor([6, 7, 8, 9, 10]), torch.arange(1, 6)[:, None])
    buckets = torch.tensor([0] + [1 + i * 10 // 15 for i in range(15)])
    m = evaluate(Oracle(split.targets), {"test": split}, buckets, k=10, user_chunk=2, n_buckets=10)["test"]
    assert m["hr_10"] == 100.0 and m["ndcg_10"] == 100.0


def test_ranks_equal_the_brute_force_definition():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 4, (50, 9), generator=g).float()  # many ties
    targets = torch.randint(1, 9, (50,), generator=g)
    history = torch.randint(0, 9, (50, 5), generator=g)  # duplicates and padding
    fast = target_ranks(scores, targets, history)
    for u in range(50):
        banned = set(history[u].tolist()) | {0}
        if int(targets[u]) in banned:
            assert fast[u] == math.inf
            continue
        t = scores[u, targets[u]]
        others = [i for i in range(1, 9) if i not in banned and i != int(targets[u])]
        assert fast[u] == 1 + sum(bool(scores[u, i] >= t) for i in others)


def test_a_text_expert_is_ranked_from_one_table_and_left_as_it_was():
    """Evaluation computes a text expert's item table once (`one_table`), with the same ranks as scoring
    every chunk through the text tower, and hands the model back in its mode without a cached table."""
    from pad.models import Expert, SASRec
    from pad.models.text import AlignedItems

    torch.manual_seed(0)
    expert = Expert(AlignedItems(torch.randn(21, 6), 4, 0.3), SASRec(4, 1, 1, 0.3, 5)).train()
    g = torch.Generator().manual_seed(2)
    inputs = torch.randint(1, 21, (30, 5), generator=g)
    split = RankingSplit(inputs, torch.randint(1, 21, (30,), generator=g), inputs)
    buckets = torch.tensor([0] + [1 + i % 10 for i in range(20)])
    calls = []
    hook = expert.items.register_forward_hook(lambda module, args, out: calls.append(args))
    got = evaluate_split(expert, split, buckets, k=10, user_chunk=7, n_buckets=10)  # 5 chunks
    hook.remove()
    assert calls == [()]  # the whole table once, no per-chunk rows
    assert expert.training and expert._table is None
    expert.eval()
    with torch.no_grad():  # by hand: every row through the tower, no table
        scores = expert.score(expert.encode(inputs)[:, -1:])[:, 0]
    hit, ndcg = hit_ndcg(target_ranks(scores, split.targets, split.history), 10)
    assert got["hr_10"] == round(100 * float(hit.mean()), 4)
    assert got["ndcg_10"] == round(100 * float(ndcg.mean()), 4)


class TableScorer:
    """Scores from a fixed (U, N+1) table: user u's model input is the single item u + 1."""

    def __init__(self, table):
        self.table = table

    def encode(self, seqs):
        return seqs[:, :, None].float()  # (B, L, 1): the user's row, recovered in `score`

    def score(self, query, candidates=None):
        return self.table[query[:, :, 0].long() - 1]  # (B, 1, N+1)


def test_non_finite_scores_are_misses_and_metrics_stay_finite():
    """A target scored NaN / inf is a miss (it used to get rank 0: a hit with nDCG = inf); a NaN on an
    other item counts as ahead of the target; no metric is NaN or inf."""
    n_users, n_items = 6, 12
    table = torch.zeros(n_users, n_items + 1)
    targets = torch.arange(2, n_users + 2)
    table[torch.arange(n_users), targets] = 1.0  # every target on top ...
    table[0, targets[0]] = math.nan  # ... but user 0's is NaN
    table[1] = math.nan  # user 1: everything NaN
    table[2, targets[2]] = math.inf  # user 2: +inf target
    table[3, 1] = math.nan  # user 3: one other item NaN -> rank 2
    table[4, 1] = -math.inf  # user 4: one other item -inf -> rank 2 as well
    inputs = torch.arange(1, n_users + 1)[:, None]  # (U, 1)
    split = RankingSplit(inputs, targets, torch.zeros(n_users, 1, dtype=torch.long))
    buckets = torch.tensor([0] + [1 + i * 3 // n_items for i in range(n_items)])
    m = evaluate(TableScorer(table), {"test": split}, buckets, k=10, user_chunk=4, n_buckets=3)["test"]
    assert m["hr_10"] == round(100 * 3 / 6, 4)  # users 3, 4, 5 hit; 0, 1, 2 miss
    assert m["ndcg_10"] == round(100 * (2 / math.log2(3) + 1) / 6, 4)
    assert m["unmasked"]["hr_10"] == m["hr_10"]
    assert all(math.isfinite(v) for v in flatten(m).values())


_SCORES = st.sampled_from([0.0, 1.0, 2.0, math.nan, math.inf, -math.inf])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n_users=st.integers(1, 6), n_items=st.integers(1, 7), h=st.integers(1, 4))
def test_ranks_follow_the_non_finite_rule(data, n_users, n_items, h):
    """Brute force of the module docstring's rule: a non-finite target has no rank (inf), a non-finite
    other item is ahead; excluded items are removed whatever their score; a repeat target is a miss."""
    scores = torch.tensor(data.draw(st.lists(st.lists(_SCORES, min_size=n_items + 1, max_size=n_items + 1),
                                             min_size=n_users, max_size=n_users)))
    targets = torch.tensor(data.draw(st.lists(st.integers(1, n_items), min_size=n_users, max_size=n_users)))
    history = torch.tensor(data.draw(st.lists(st.lists(st.integers(0, n_items), min_size=h, max_size=h),
                                              min_size=n_users, max_size=n_users)))
    unmasked, masked = target_ranks(scores, targets), target_ranks(scores, targets, history)
    for u in range(n_users):
        t, target = scores[u, targets[u]], int(targets[u])
        for got, banned in ((unmasked[u], set()), (masked[u], set(history[u].tolist()))):
            if not math.isfinite(t) or target in banned:
                assert got == math.inf
                continue
            others = [i for i in range(1, n_items + 1) if i != target and i not in banned]
            assert got == 1 + sum(not math.isfinite(scores[u, i]) or bool(scores[u, i] >= t) for i in others)


def test_user_chunks_shrink_for_big_catalogues():
    from pad.evaluation.ranking import EVAL_CHUNK_SCORES, users_per_chunk

    assert users_per_chunk(2048, 8348) == 2048  # Prime Pantry: the param as given
    assert users_per_chunk(2048, 423_192) * 423_192 <= EVAL_CHUNK_SCORES  # Electronics: 158 users a chunk
    assert users_per_chunk(2048, 10 * EVAL_CHUNK_SCORES) == 1


def test_sample_users_is_fixed_by_the_seed_and_keeps_order():
    from pad.evaluation.ranking import RankingSplit, sample_users

    split = RankingSplit(torch.arange(40).reshape(20, 2), torch.arange(20), torch.zeros(20, 3, dtype=torch.long))
    a, b = sample_users(split, 5, seed=1), sample_users(split, 5, seed=1)
    assert torch.equal(a.targets, b.targets) and len(a.targets) == 5
    assert torch.equal(a.targets, a.targets.sort().values)  # original order kept
    assert torch.equal(a.inputs, split.inputs[a.targets])  # rows stay together
    assert not torch.equal(sample_users(split, 5, seed=2).targets, a.targets)
    assert sample_users(split, 0, seed=1) is split and sample_users(split, 20, seed=1) is split


def test_scorers_get_the_last_states_as_contiguous_copies():
    """`last_state` copies the last position out: a strided (C, 1, d) slice sent torch.matmul down one product
    per user for tables without gradients (5x slower at 105,799 items); the ranking hands scorers the copy."""
    from pad.evaluation.ranking import last_state

    states = torch.randn(4, 6, 3)
    assert torch.equal(last_state(states), states[:, -1:]) and last_state(states).is_contiguous()
    assert not states[:, -1:].is_contiguous()  # what the copy is for

    seen = []

    class Recording(TableScorer):
        def encode(self, seqs):
            return torch.cat([seqs[:, :, None].float(), torch.zeros(*seqs.shape, 2)], 2)  # (B, L, 3)

        def score(self, query, candidates=None):
            seen.append(query.is_contiguous())
            return super().score(query, candidates)

    table = torch.randn(5, 8)
    split = RankingSplit(torch.arange(1, 6)[:, None].repeat(1, 4), torch.randint(1, 8, (5,)), torch.zeros(5, 1).long())
    split_ranks(Recording(table), split, user_chunk=2)
    assert seen == [True, True, True]
