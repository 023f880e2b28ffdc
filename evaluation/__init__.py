"""Onboard's evaluation: does the fine-tune (and retrieval) make answers better, and by more than noise?

`onboard eval` compares four systems on the held-out questions (base, base+RAG, tuned, tuned+RAG).
This package sits between `serving` and `agent` in the dependency graph: it may import `rag` and
`serving`, never `training` or `agent`. `evaluation.metrics` holds the scores, as pure functions.

Importing this package imports nothing heavy; jieba and sacrebleu load on first use.
"""
