"""`make compare` leaves `git status` clean: per-run output goes to the ignored out/ directory,
the calibration to the per-user data directory; only `make publish` writes under results/."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60)


pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("git") is None or not (ROOT / "Makefile").exists()
    or git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true",
    reason="needs make, git and a git checkout of mmbench")


def tracked_state():
    """Every tracked file's content hash, plus the untracked files that are not ignored."""
    diff = git("diff", "HEAD", "--stat", "--no-color").stdout
    hashes = git("ls-files", "-s").stdout
    untracked = git("ls-files", "--others", "--exclude-standard").stdout
    return diff, hashes, untracked


def test_make_compare_leaves_tracked_files_unchanged(tmp_path):
    # no calibration anywhere (an empty project directory too), so the recipe makes one
    env = dict(os.environ, MMBENCH_DATA_DIR=str(tmp_path / "data"), MMBENCH_RESULTS=str(tmp_path / "proj"))
    env.pop("MMBENCH_CALIBRATION", None)
    bin_dir = Path(sys.executable).parent
    before = tracked_state()
    # the same recipe as `make compare`, small: STAMP= skips the install step (this interpreter's
    # environment is already installed), a quick calibration, a tiny run of two designs
    # (OUT elsewhere: the user's own out/compare, the last `make compare`, is left alone)
    out = tmp_path / "out"
    cmd = ["make", "-C", str(ROOT), "compare", "STAMP=", f"BIN={bin_dir}", "PROFILE=tiny", f"OUT={out}",
           "CALIBRATE_ARGS=--quick", "RUN_ARGS=-b reference -b linux -w dense -w seq_first_touch"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    assert tracked_state() == before, "make compare changed tracked or unignored files"
    assert (out / "latest.json").exists() and (out / "README.md").exists()
    assert "metadata bytes per resident page" in p.stdout and f"full report: {out / 'README.md'}" in p.stdout
    assert list((tmp_path / "data" / "calibration").glob("*.json")), "the calibration goes to the user directory"
