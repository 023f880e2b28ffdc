"""Datasets from documents and from user files."""
