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


@pytest.fixture(scope="class")
def no_onboard_env_class():
    """`no_onboard_env` for a class of tests that share one server."""
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("ONBOARD_"):
                mp.delenv(k)
        yield
