"""The text-based item tables of the alignment and LLM experts (DESIGN §5, §6)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.losses.alignment import mk_mmd
from pad.models.text import TOWERS, AlignedItems, TextItems, TextMLP

torch.set_num_threads(1)


def text_matrix(n_items: int, text_dim: int, seed: int = 0) -> torch.Tensor:
    emb = torch.randn(n_items + 1, text_dim, generator=torch.Generator().manual_seed(seed))
    emb[0] = 0.0
    return emb


def test_text_mlp_layout():
    mlp = TextMLP(384, 16, 0.1)
    linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(384, 16)] + [(16, 16)] * 4
    assert sum(isinstance(m, torch.nn.Dropout) for m in mlp) == 4
    assert mlp(torch.randn(3, 384)).shape == (3, 16)


@settings(max_examples=15, deadline=None)
@given(n_items=st.integers(1, 20), text_dim=st.sampled_from([3, 8, 384]), dim=st.sampled_from([2, 8]),
       which=st.sampled_from(["sum", "residual", "reference", "linear", "mlp"]))
def test_tables_have_zero_padding_row_and_rows_match_ids(n_items, text_dim, dim, which):
    torch.manual_seed(0)
    emb = text_matrix(n_items, text_dim)
    items = TextItems(emb, dim, 0.2, which) if which in TOWERS else AlignedItems(emb, dim, 0.2, fusion=which)
    items.eval()
    table = items()
    assert table.shape == (n_items + 1, dim)
    assert torch.equal(table[0], torch.zeros(dim))
    ids = torch.randint(0, n_items + 1, (3, 5))
    rows = items(ids)
    assert rows.shape == (3, 5, dim)
    assert torch.allclose(rows, table[ids], atol=1e-6)
    assert torch.equal(rows[ids == 0], torch.zeros(int((ids == 0).sum()), dim))


def test_text_matrix_is_frozen_non_persistent_buffer():
    emb = text_matrix(10, 8)
    items = AlignedItems(emb, 4, 0.0)
    assert "text_emb" not in items.state_dict()
    assert all(p.data_ptr() != items.text_emb.data_ptr() for p in items.parameters())
    assert not items.text_emb.requires_grad
    copy = AlignedItems(emb, 4, 0.0)
    copy.load_state_dict(items.state_dict())
    assert torch.equal(copy.eval()(), items.eval()())


def test_aligned_items_init_from_pretrained_ids_and_sides():
    emb, ids = text_matrix(12, 8), torch.randn(13, 4)
    items = AlignedItems(emb, 4, 0.0, id_init=ids).eval()
    assert torch.equal(items.id_side(), ids)
    assert torch.equal(items.id_side(torch.tensor([3, 5])), ids[[3, 5]])
    assert items.text_side().shape == (13, 4)
    with pytest.raises(ValueError, match="id_init"):
        AlignedItems(emb, 4, 0.0, id_init=torch.randn(12, 4))
    with pytest.raises(ValueError, match=r"\(N\+1, D\)"):
        TextItems(torch.randn(8), 4, 0.0)


def _step(items: AlignedItems) -> None:
    """One AdamW step (with weight decay) on a loss that touches the ID table both ways."""
    opt = torch.optim.AdamW(items.parameters(), lr=0.1, weight_decay=0.1)
    batch = torch.arange(1, 9)
    loss = items(batch).pow(2).sum() + mk_mmd(items.text_side(batch), items.id_side(batch))
    loss.backward()
    opt.step()


def test_frozen_id_table_is_bit_identical_after_a_step_and_anchored_changes_it():
    torch.manual_seed(0)
    frozen = AlignedItems(text_matrix(10, 8), 4, 0.1)
    frozen.freeze_ids()
    assert frozen.frozen
    before_ids, before_tower = frozen.id_emb.weight.clone(), frozen.mlp.weight.clone()
    _step(frozen)
    assert torch.equal(frozen.id_emb.weight, before_ids)
    assert not torch.equal(frozen.mlp.weight, before_tower)  # the rest still trains

    anchored = AlignedItems(text_matrix(10, 8), 4, 0.1)
    before = anchored.id_emb.weight.clone()
    _step(anchored)
    assert not torch.equal(anchored.id_emb.weight[1:9], before[1:9])
    anchored.freeze_ids(False)
    assert not anchored.frozen


def test_text_items_only_train_their_mlp():
    items = TextItems(text_matrix(6, 8), 4, 0.0)
    assert {name.split(".")[0] for name, _ in items.named_parameters()} == {"mlp"}
    items().sum().backward()
    assert items.text_emb.grad is None


def test_residual_fusion_starts_at_the_pretrained_table_and_reference_does_not():
    torch.manual_seed(0)
    text, init = torch.randn(9, 12), torch.randn(9, 4)
    init[0] = 0
    residual = AlignedItems(text, 4, 0.1, id_init=init, fusion="residual").eval()
    reference = AlignedItems(text, 4, 0.1, id_init=init, fusion="reference").eval()
    assert torch.equal(residual(), init)
    assert not torch.allclose(reference(), init, atol=1e-3)


def test_sum_fusion_is_the_id_vector_plus_a_linear_map_of_the_text():
    torch.manual_seed(0)
    text, init = torch.randn(9, 12), torch.randn(9, 4)
    text[0], init[0] = 0, 0
    items = AlignedItems(text, 4, 0.5, id_init=init).train()  # default fusion; no dropout anywhere
    assert items.fusion == "sum" and isinstance(items.mlp, torch.nn.Linear) and not hasattr(items, "fuse")
    want = init + text @ items.mlp.weight.T + items.mlp.bias
    want[0] = 0
    assert torch.allclose(items(), want, atol=1e-6)
    assert torch.allclose(items.text_side(), text @ items.mlp.weight.T + items.mlp.bias, atol=1e-6)


def test_fusions_pick_their_towers_and_unknown_names_fail():
    text = torch.randn(9, 12)
    assert isinstance(AlignedItems(text, 4, 0.0, fusion="residual").mlp, TextMLP)
    assert isinstance(TextItems(text, 4, 0.0, "mlp").mlp, TextMLP)
    assert isinstance(TextItems(text, 4, 0.0, "linear").mlp, torch.nn.Linear)
    with pytest.raises(ValueError, match="fusion"):
        AlignedItems(text, 4, 0.0, fusion="concat")
    with pytest.raises(ValueError, match="tower"):
        TextItems(text, 4, 0.0, "transformer")


def test_the_experts_share_one_frozen_text_matrix():
    from pad.models.text import AlignedItems, TextItems

    text = torch.randn(6, 4)
    a, b = AlignedItems(text, 3, 0.1), TextItems(text, 3, 0.1)
    assert a.text_emb.data_ptr() == b.text_emb.data_ptr() == text.data_ptr()  # held once, not per expert
    assert TextItems(text.double(), 3, 0.1).text_emb.dtype == torch.float32  # other dtypes: a float32 copy
