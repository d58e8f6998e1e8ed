"""Phase 0: item text -> frozen vectors (DESIGN §3)."""
from pad.embed.catalogue import EMPTY_TEXT_RULE, EmbedResult, embed_catalogue
from pad.embed.store import load_embeddings, read_item_texts, write_embeddings

__all__ = ["EMPTY_TEXT_RULE", "EmbedResult", "embed_catalogue", "load_embeddings", "read_item_texts", "write_embeddings"]
