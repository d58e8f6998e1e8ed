"""Phase 0: item text -> frozen vectors (DESIGN §3).

`pad.embed.catalogue` embeds a catalogue in cached shards (the embed stage); `pad.embed.store` reads and
writes the embeddings Parquet (what the training stages read). This file imports neither, so a training
stage that reads the embeddings does not load, or depend on, the encoders.
"""
