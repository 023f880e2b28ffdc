"""Metadata filters, one definition for both retrievers.

A filter is a dict of chunk-metadata key -> value: a scalar matches equal values, a list matches any
of its values, and `tags` matches chunks carrying that tag (or any of a list of tags). E.g.
`{"language": "zh", "source": ["faq.md", "returns.md"], "tags": "policy"}`.
"""

from __future__ import annotations

from rag.errors import BadRagOption

FILTER_KEYS = ("source", "root", "language", "tags", "doc_id", "kind", "page", "title")


def _check(filters: dict) -> None:
    unknown = [k for k in filters if k not in FILTER_KEYS]
    if unknown:
        raise BadRagOption(f"unknown filter key(s) {', '.join(unknown)}; use {', '.join(FILTER_KEYS)}.")


def to_chroma_where(filters: dict | None) -> dict | None:
    """The Chroma `where` clause equivalent to `filters`."""
    if not filters:
        return None
    _check(filters)
    clauses = []
    for key, value in filters.items():
        values = value if isinstance(value, list | tuple | set) else [value]
        if key == "tags":
            ors = [{"tags": {"$contains": v}} for v in values]
            clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
        else:
            clauses.append({key: {"$in": list(values)}} if len(values) > 1 else {key: {"$eq": values[0]}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def matches(meta: dict, filters: dict | None) -> bool:
    """Whether one chunk's metadata passes `filters` (the same semantics as `to_chroma_where`)."""
    if not filters:
        return True
    _check(filters)
    for key, value in filters.items():
        values = set(value) if isinstance(value, list | tuple | set) else {value}
        if key == "tags":
            if not values & set(meta.get("tags") or []):
                return False
        elif meta.get(key) not in values:
            return False
    return True
