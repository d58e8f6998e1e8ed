"""Top-k recommendations from the trained PAD model (DESIGN §8): `pad recommend`.

Loaded once: the PAD checkpoint, the text embeddings and the items file. Every expert's (N+1, d) item
table is computed once and saved next to the model (`models/finetune.items.pt`), keyed by a hash of the
checkpoint and embeddings files: reused while both are unchanged, rebuilt (atomically) when either
changes. The gate's weights are per item, so for the `bucket`/`global` gates they are folded into the
tables: score(i) = Σ_e w_e(bucket i) <q_e, v_e(i)> = <[q_1; …; q_E], [w_1 v_1(i); …; w_E v_E(i)]>.
A request then costs one backbone pass per expert (one stacked pass when they are SASRec, see
pad/serve/stacked.py), one matmul and a top-k over the catalogue; from INT8_FROM items the matmul reads
an int8 copy of the table and the top-k is made exact by rescoring (pad/serve/shortlist.py).

The query is the evaluation's (pad/evaluation/ranking.py): the last `model.max_len` history items,
left-padded; padding is never ranked and history items are excluded (score -inf) unless repeats are
allowed. For a user id the history is the user's whole sequence: the answer is the next item after
everything seen.

New items (text, no interactions, no ID row; `--new-items FILE`) are scored by the text-based experts
only: the rule is in pad/serve/new_items.py. Catalogue items with
train_freq 0 have ID rows (never trained) and are scored by every expert like any other item.
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import polars as pl
import torch
from torch import Tensor

from pad.data.buckets import read_n_buckets
from pad.errors import PadError
from pad.io import load_torch, save_torch
from pad.models.gate import NetworkGate
from pad.models.pad import PAD
from pad.serve.new_items import embed_texts, new_item_vectors, read_new_items
from pad.serve.shortlist import ShortlistScorer, int8_available
from pad.serve.stacked import StackedSASRec
from pad.train.checkpoint import fingerprint
from pad.train.data import left_pad

CACHE_FORMAT = "pad.items/1"
# From this catalogue size and folded-table width (E·d columns), top-k reads the folded table's int8 copy and
# rescores a certified shortlist exactly (pad/serve/shortlist.py): at 8k items the fp32 matmul is not the cost,
# at 423k it is most of it. Measured at 423,191 items on a 2-core AVX2 box, one thread (benchmarks/serve.md):
# the int8 matmul is faster for PAD's 192-column table (11.4 vs 15.3 ms) but slower for SASRec's 64 columns
# (7.8 vs 5.9 ms), so a one-expert d=64 model keeps fp32.
INT8_FROM = 50_000
INT8_MIN_WIDTH = 128


def int8_by_default(n_items: int, width: int) -> bool:
    """Whether top-k goes through the int8 shortlist when the caller does not say (`int8=None`): a large
    catalogue and a wide folded table (`width` = E·d columns)."""
    return n_items >= INT8_FROM and width >= INT8_MIN_WIDTH


@dataclass(frozen=True)
class Catalogue:
    """Items by item_idx (index 0 = padding): ids, titles, (M+1,) buckets; rows > n_known are new items;
    n_buckets = the data's B (the coldest bucket, which may hold no known item)."""

    item_ids: list[str]
    titles: list[str]
    buckets: Tensor
    n_known: int
    n_buckets: int

    def lookup(self, ids: Sequence[str], source: str) -> list[int]:
        """item_id strings -> item_idx; a PadError names an unknown id and how to list them."""
        index = {item: i for i, item in enumerate(self.item_ids) if i}
        missing = [i for i in ids if i not in index]
        if missing:
            near = difflib.get_close_matches(missing[0], index, n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise PadError(f"unknown item id {missing[0]!r}{hint}; item ids are the item_id column of {source}")
        return [index[i] for i in ids]

    def with_new_items(self, ids: list[str], texts: list[str]) -> "Catalogue":
        """New items appended after the known ones, in the coldest bucket (ids checked fresh and distinct by
        `read_new_items`)."""
        cold = torch.full((len(ids),), self.n_buckets, dtype=torch.long)
        return replace(self, item_ids=self.item_ids + ids, titles=self.titles + texts,
                       buckets=torch.cat([self.buckets, cold]))


def read_catalogue(path: str | Path) -> Catalogue:
    """items.parquet (item_idx 1..N, item_id, text, bucket; n_buckets in its metadata) -> Catalogue."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: items file not found; run the prepare stage first (dvc repro prepare)")
    n_buckets = read_n_buckets(path)
    df = pl.read_parquet(path, columns=["item_idx", "item_id", "text", "bucket"]).sort("item_idx")
    if df["item_idx"].to_list() != list(range(1, len(df) + 1)):
        raise PadError(f"{path}: item_idx must be exactly 1..N")
    buckets = torch.tensor([0] + df["bucket"].to_list(), dtype=torch.long)
    return Catalogue([""] + df["item_id"].to_list(), [""] + [t or "" for t in df["text"].to_list()], buckets, len(df),
                     n_buckets)


def user_history(path: str | Path, user_id: str) -> list[int]:
    """The user's whole item sequence (item_idx, time order) from sequences.parquet."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: sequences file not found; run the prepare stage first (dvc repro prepare)")
    df = pl.read_parquet(path, columns=["user_id", "items"])
    row = df.filter(pl.col("user_id") == user_id)
    if not len(row):
        near = difflib.get_close_matches(user_id, df["user_id"].to_list(), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise PadError(f"unknown user id {user_id!r}{hint}; user ids are the user_id column of {path}")
    return [int(i) for i in row["items"][0]]


def item_tables(model: PAD, files: Sequence[str | Path], cache_path: str | Path) -> tuple[dict[str, Tensor], bool]:
    """Every expert's (N+1, d) item table, from `cache_path` if its key (hash of `files`) matches, else
    computed and saved there atomically. Returns (tables, reused)."""
    key = fingerprint(CACHE_FORMAT, model.names, files=tuple(files))
    cache_path = Path(cache_path)
    if cache_path.is_file():
        try:
            saved = load_torch(cache_path, what="item-table cache")
        except PadError:  # an unreadable cache is simply rebuilt
            saved = {}
        if saved.get("format") == CACHE_FORMAT and saved.get("key") == key:
            return saved["tables"], True
    was_training = model.training
    model.eval()
    with torch.no_grad():
        tables = {name: expert.item_vectors().detach().contiguous() for name, expert in model.experts.items()}
    model.train(was_training)
    save_torch({"format": CACHE_FORMAT, "key": key, "tables": tables}, cache_path)
    return tables, False


class Recommender:
    """Scores the next item after a history with a PAD model whose item tables are precomputed. `int8`:
    exact top-k through the folded table's int8 copy (None = `int8_by_default`, where fbgemm exists)."""

    def __init__(self, model: PAD, tables: Mapping[str, Tensor], catalogue: Catalogue, max_len: int,
                 int8: bool | None = None) -> None:
        self.model, self.catalogue, self.max_len = model.eval(), catalogue, max_len
        self.experts = [model.experts[n] for n in model.names]
        self.tables = [tables[n] for n in model.names]  # E × (M+1, d)
        backbones = [e.backbone for e in self.experts]
        self.stacked = StackedSASRec(backbones) if StackedSASRec.supports(backbones) else None
        self.folded = None
        if not isinstance(model.gate, NetworkGate):
            with torch.no_grad():
                w = model.gate.weights(catalogue.buckets)  # (M+1, E)
                self.folded = torch.cat([t * w[:, e, None] for e, t in enumerate(self.tables)], 1).T.contiguous()  # (E·d, M+1)
        self.shortlist = None
        if self.folded is not None and int8_available() and (
                int8_by_default(self.n_items, len(self.folded)) if int8 is None else int8):
            self.shortlist = ShortlistScorer(self.folded)

    @property
    def n_items(self) -> int:
        return len(self.catalogue.item_ids) - 1

    @torch.no_grad()
    def states(self, history: Sequence[int]) -> Tensor:
        """(E, d): each expert's query after `history` (item_idx, oldest first)."""
        if not len(history):
            raise PadError("the history is empty: give at least one item id")
        recent = torch.as_tensor(list(history[-self.max_len:]), dtype=torch.long)  # (T,)
        if self.stacked is not None:
            return self.stacked(torch.stack([t[recent] for t in self.tables]))  # (E, d)
        seq = left_pad([recent.numpy()], self.max_len)  # (1, L)
        return torch.cat([e.backbone(t[seq], seq != 0)[:, -1] for e, t in zip(self.experts, self.tables)])

    @torch.no_grad()
    def scores(self, history: Sequence[int]) -> Tensor:
        """(M+1,) fp32 scores of every item as the next one after `history` (item_idx, oldest first); [0] = -inf."""
        states = self.states(history)
        if self.folded is not None:
            out = (states.reshape(1, -1) @ self.folded)[0]  # (M+1,)
        else:
            out = self.model.gate([states[e, None] @ t.T for e, t in enumerate(self.tables)], self.catalogue.buckets)[0]
        out[0] = -math.inf
        return out

    def top_k(self, history: Sequence[int], k: int, allow_repeats: bool = False) -> tuple[Tensor, Tensor]:
        """(k,) item_idx and (k,) scores, best first; history items excluded unless `allow_repeats`."""
        seen = set(history)
        left = self.n_items - (0 if allow_repeats else len(seen))
        if k <= 0 or k > self.n_items:
            raise PadError(f"-k {k}: must be between 1 and the number of items ({self.n_items})")
        if k > left:
            raise PadError(f"-k {k}: only {left} items are left after excluding the {len(seen)} history items; "
                           "lower -k or pass --allow-repeats")
        if self.shortlist is not None:
            excluded = [0] if allow_repeats else [0, *seen]
            return self.shortlist.top_k(self.states(history).reshape(1, -1), k, excluded)  # exact, via int8
        scores = self.scores(history)
        if not allow_repeats:
            scores[list(seen)] = -math.inf
        values, idx = torch.topk(scores, k)
        return idx, values

    def recommend(self, history: Sequence[int], k: int, allow_repeats: bool = False) -> list[dict[str, Any]]:
        """Rows {rank, item_id, title, score, bucket, new} of the top-k items."""
        idx, values = self.top_k(history, k, allow_repeats)
        cat = self.catalogue
        return [{"rank": r + 1, "item_id": cat.item_ids[i], "title": cat.titles[i], "score": round(float(s), 4),
                 "bucket": int(cat.buckets[i]), "new": i > cat.n_known}
                for r, (i, s) in enumerate(zip(idx.tolist(), values.tolist()))]


def format_table(rows: list[dict[str, Any]], width: int = 60) -> str:
    """Plain-text table: rank, item_id, title (cut to `width`), score, bucket (`new` marks new items)."""
    id_w = max([len("item_id")] + [len(r["item_id"]) for r in rows])
    lines = [f"{'rank':>4}  {'item_id':<{id_w}}  {'title':<{width}}  {'score':>9}  bucket"]
    for r in rows:
        title = r["title"] if len(r["title"]) <= width else r["title"][:width - 1] + "…"
        bucket = f"{r['bucket']} (new)" if r["new"] else str(r["bucket"])
        lines.append(f"{r['rank']:>4}  {r['item_id']:<{id_w}}  {title:<{width}}  {r['score']:>9.4f}  {bucket}")
    return "\n".join(lines) + "\n"


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def default_cache_path(model_path: str | Path) -> Path:
    """models/finetune.pt -> models/finetune.items.pt."""
    return Path(model_path).with_suffix(".items.pt")


def _check_catalogue(catalogue: Catalogue, model: PAD, items_path: Path, model_path: Path) -> None:
    buckets = model.item_buckets
    n = len(buckets) - 1
    if (catalogue.n_known != n or not torch.equal(catalogue.buckets, buckets.cpu())
            or catalogue.n_buckets != model.gate.n_buckets):
        raise PadError(f"{items_path} ({catalogue.n_known} items) is not the items file {model_path} was trained on "
                       f"({n} items, or other buckets); rerun the pipeline (dvc repro)")


def load_recommender(model_path: str | Path, embeddings_path: str | Path, items_path: str | Path, *,
                     new_items: str | Path | None = None, cache_path: str | Path | None = None,
                     int8: bool | None = None) -> Recommender:
    """The fine-tuned PAD model as a Recommender (item tables from/into the cache next to the model; `int8`
    as Recommender's)."""
    from pad.embed.store import load_embeddings
    from pad.train.finetune import load_pad_checkpoint, load_pad_model

    model_path, items_path = Path(model_path), Path(items_path)
    max_len = load_pad_checkpoint(model_path)["model"]["max_len"]
    text_emb, meta = load_embeddings(embeddings_path)
    model = load_pad_model(model_path, text_emb)
    catalogue = read_catalogue(items_path)
    _check_catalogue(catalogue, model, items_path, model_path)
    tables, _ = item_tables(model, (model_path, embeddings_path), cache_path or default_cache_path(model_path))
    if new_items is not None:
        ids, texts = read_new_items(new_items, known=catalogue.item_ids[1:])  # checked before any encoder loads
        text = torch.from_numpy(embed_texts(texts, meta, text_emb.shape[1]))  # (M, D)
        tables = {n: torch.cat([t, new_item_vectors(model.experts[n].items, text)]) for n, t in tables.items()}
        catalogue = catalogue.with_new_items(ids, texts)
    return Recommender(model, tables, catalogue, max_len, int8)


def load_baseline(pretrain_path: str | Path, items_path: str | Path, cache_path: str | Path | None = None,
                  int8: bool | None = None) -> Recommender:
    """The phase-1 expert alone (e.g. SASRec) as a Recommender, served by the same code path."""
    from pad.train.checkpoint import load_pretrained

    expert, cfg = load_pretrained(pretrain_path)
    catalogue = read_catalogue(items_path)
    if catalogue.n_known != expert.items.embedding.num_embeddings - 1:
        raise PadError(f"{items_path} is not the items file {pretrain_path} was trained on; rerun dvc repro")
    model = PAD.single(expert, catalogue.buckets, catalogue.n_buckets)
    tables, _ = item_tables(model, (pretrain_path,), cache_path or default_cache_path(pretrain_path))
    return Recommender(model, tables, catalogue, cfg.max_len, int8)


def recommend_command(user: str | None, items: str | None, k: int, as_json: bool, allow_repeats: bool,
                      new_items: Path | None, model: Path | None, embeddings: Path | None,
                      catalogue: Path | None, sequences: Path | None) -> str:
    """`pad recommend`: the rendered table (or JSON); paths default to params.yaml's `paths`."""
    if (user is None) == (items is None):
        raise PadError("give exactly one of --user USER_ID or --items ID1,ID2,...")
    if k <= 0:
        raise PadError(f"-k {k}: must be at least 1")
    if None in (model, embeddings, catalogue, sequences):
        from pad.config import load_section

        paths = load_section("paths")
        model = model or Path(paths.finetune_model)
        embeddings, catalogue = embeddings or Path(paths.embeddings), catalogue or Path(paths.items)
        sequences = sequences or Path(paths.sequences)
    rec = load_recommender(model, embeddings, catalogue, new_items=new_items)
    if user is not None:
        history = user_history(sequences, user)
    else:
        ids = [i.strip() for i in items.split(",") if i.strip()]
        history = rec.catalogue.lookup(ids, str(catalogue) + (f" or {new_items}" if new_items else ""))
    rows = rec.recommend(history, k, allow_repeats)
    return to_json(rows) if as_json else format_table(rows)
