"""Baselines of the paper's Table 2 and newer LLM-enhanced peers (DESIGN §12), one module per method.

Every method is an `Expert` (item module + `model.backbone`, scored by dot product) trained with the project's
recommendation loss (`model.loss`) and training loop (`pad.train.loop.fit`: AdamW, early stopping on validation
nDCG@10, best-validation weights kept), on the same prepared data and text embeddings as PAD, and evaluated by
the same full ranking (`pad.baselines.harness`). Each module cites its paper and public code and says where
this version departs from them.
"""
