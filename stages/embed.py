"""Embed every item's text into a frozen vector (DESIGN §3); resumable, runs under torchrun too."""
from pathlib import Path

from pad.config import load_section
from pad.embed.catalogue import embed_catalogue
from pad.embed.store import read_item_texts, write_embeddings
from pad.errors import friendly_errors
from pad.io import write_json
from pad.train.distributed import set_threads


@friendly_errors
def main() -> None:
    paths = load_section("paths")
    cfg = load_section("embed")
    set_threads()
    item_idx, texts = read_item_texts(paths.items)
    result = embed_catalogue(item_idx, texts, cfg, paths.embed_cache)
    if result is None:  # a torchrun rank other than 0: rank 0 writes the outputs
        return
    write_embeddings(item_idx, result.vectors, result.meta, paths.embeddings)
    write_json(result.metrics, Path(paths.metrics) / "embed.json")
    write_json(result.timings, Path(paths.timings) / "embed.json")
    print(f"embed: {result.stats['items']} items, dim {result.stats['dim']}, "
          f"{result.stats['cached_items']} from cache, {result.stats['wall_s']} s")


if __name__ == "__main__":
    main()
