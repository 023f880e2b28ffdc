"""Fixtures of the serving tests (the real servers they start are in `servers.py`)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture()
def no_onboard_env(monkeypatch):
    """Settings read ONBOARD_* variables: keep the test runner's (ONBOARD_THREADS...) out of a test."""
    for k in list(os.environ):
        if k.startswith("ONBOARD_"):
            monkeypatch.delenv(k)
