"""Onboard's training stages: base models, datasets, SFT (LoRA/QLoRA), merge.

Importing this package loads no model and imports no heavy library.
"""
