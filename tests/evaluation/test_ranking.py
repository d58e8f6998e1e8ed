"""Full-ranking metrics against hand-computed ranks (ties, history exclusion, repeats, chunking)."""
import math

import torch

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
    metrics = flatten(evaluate(expert, {"test": split}, buckets, k=10, user_chunk=5))
    for key in ["test.hr_10", "test.ndcg_10", "test.cold.ndcg_10", "test.buckets.10.hr_10",
                "test.unmasked.hr_10", "test.repeat_targets", "test.warm.users"]:
        assert key in metrics
    assert metrics["test.repeat_targets"] >= 1
    assert metrics["test.unmasked.hr_10"] >= metrics["test.hr_10"] - 100 * 1 / 23  # masking only helps non-repeats
    groups = sum(metrics[f"test.{g}.users"] for g in ("warm", "median", "cold"))
    assert groups == metrics["test.users"] == 23


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
    m = evaluate(Oracle(split.targets), {"test": split}, buckets, k=10, user_chunk=2)["test"]
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
    got = evaluate_split(expert, split, buckets, k=10, user_chunk=7)  # 5 chunks
    hook.remove()
    assert calls == [()]  # the whole table once, no per-chunk rows
    assert expert.training and expert._table is None
    expert.eval()
    with torch.no_grad():  # by hand: every row through the tower, no table
        scores = expert.score(expert.encode(inputs)[:, -1:])[:, 0]
    hit, ndcg = hit_ndcg(target_ranks(scores, split.targets, split.history), 10)
    assert got["hr_10"] == round(100 * float(hit.mean()), 4)
    assert got["ndcg_10"] == round(100 * float(ndcg.mean()), 4)
