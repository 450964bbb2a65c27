"""Shared fixtures: the real clips (the repository's and ../shared/data/clips) and the
`mirkit` command-line binary that the tagger's scores are checked against."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
REPO_CLIPS = ROOT / "data" / "clips"
SHARED_CLIPS = ROOT.parent / "shared" / "data" / "clips"
TRUMPET = REPO_CLIPS / "sorohanro_-_solo-trumpet-06.hq.ogg"
BRAHMS = REPO_CLIPS / "brahms_hungarian_dance_5.hq.ogg"


def shared_clips() -> list[Path]:
    """Every clip of ../shared/data/clips, else the repository's two."""
    found = sorted(SHARED_CLIPS.glob("*.ogg")) if SHARED_CLIPS.is_dir() else []
    return found or sorted(REPO_CLIPS.glob("*.ogg"))


@pytest.fixture(scope="session")
def mirkit_bin() -> str:
    """The CLI built by `cargo test` (.ci/run sets MIRKIT_BIN); a missing binary is a
    failure, not a skip."""
    cands = [os.environ.get("MIRKIT_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    cands += [str(Path(target) / p / "mirkit") for p in ("debug", "release")]
    cands.append(shutil.which("mirkit"))
    for c in cands:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    pytest.fail("no mirkit binary: build it (cargo build) or set MIRKIT_BIN")
