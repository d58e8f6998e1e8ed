"""Serving (DESIGN §8): `pad recommend` and its Python API, outside every pipeline stage.

- recommender.py: the catalogue, the cached per-expert item tables, `Recommender` (top-k after a
  history), `load_recommender` / `load_baseline` and the `pad recommend` command;
- new_items.py: the rule for items with text but no interactions (`--new-items FILE`);
- stacked.py: several SASRec experts run as one batched pass per request (exact, inference only);
- shortlist.py: exact top-k over a large catalogue through an int8 copy of the scoring table and a
  certified fp32 rescoring (by default from `recommender.INT8_FROM` items and `INT8_MIN_WIDTH` columns).
"""
from pad.serve.new_items import embed_texts, new_item_vectors, read_new_items
from pad.serve.recommender import (Catalogue, Recommender, default_cache_path, format_table, item_tables,
                                   load_baseline, load_recommender, read_catalogue, recommend_command, to_json,
                                   user_history)
from pad.serve.stacked import StackedSASRec

__all__ = ["Catalogue", "Recommender", "StackedSASRec", "default_cache_path", "embed_texts", "format_table",
           "item_tables", "load_baseline", "load_recommender", "new_item_vectors", "read_catalogue",
           "read_new_items", "recommend_command", "to_json", "user_history"]
