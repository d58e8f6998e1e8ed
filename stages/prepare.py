"""Stage `prepare`: raw data (per params `data`) -> items/sequences Parquet + metrics/prepare.json."""
from pathlib import Path

from pad.config import load_section
from pad.data.prepare import prepare, write_prepared
from pad.errors import friendly_errors


@friendly_errors
def main() -> None:
    paths = load_section("paths")
    cfg = load_section("data")
    prepared = prepare(cfg)
    write_prepared(prepared, paths.items, paths.sequences, Path(paths.metrics) / "prepare.json")
    m = prepared.metrics
    print(f"prepare: {m['users']} users, {m['items']} items, {m['interactions']} interactions "
          f"({cfg.source}); bucket cuts {m['bucket_cuts']}")


if __name__ == "__main__":
    main()
