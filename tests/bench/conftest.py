"""Fixtures of the benchmark smoke tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder only this test's bench writes to: other benchmarks running on a shared
    machine write their own carveout-* folders to /tmp, which must not look like ours.
    Empty at the end means the bench cleaned up after itself."""
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    return private
