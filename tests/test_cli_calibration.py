"""Where a calibration is found: the same from any directory, matched to the host by hardware,
and the terminal says which one was used or why none was."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mmbench import calibration_search as cs
from mmbench import errors, estimate
from mmbench.cli import app

CLI = CliRunner()


def cal_file(path, machine, trap=100.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "kind": "calibration", "machine": machine,
                                "costs": {"trap": {"ns": trap}}}))
    return path


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty user directory and an empty project directory; no $MMBENCH_CALIBRATION."""
    user, proj = tmp_path / "data", tmp_path / "project"
    monkeypatch.setenv("MMBENCH_DATA_DIR", str(user))
    monkeypatch.setenv("MMBENCH_RESULTS", str(proj))
    monkeypatch.delenv("MMBENCH_CALIBRATION", raising=False)
    monkeypatch.chdir(tmp_path)
    return user / "calibration", proj / "calibration"


def test_none_found_says_where_it_looked(dirs):
    user, proj = dirs
    f = cs.find()
    assert f.calibration is None and not f
    assert f.message.startswith("no calibration") and str(user) in f.message and str(proj) in f.message
    assert estimate.load_calibration() is None


def test_a_file_named_after_this_host_on_other_hardware_is_not_used(dirs):
    """The old rule (hostname, else the newest file) used another machine's prices silently."""
    user, proj = dirs
    other = dict(cs.this_host(), cpu="Some Other CPU", kernel="1.0")
    cal_file(proj / f"{cs.this_host()['hostname']}.json", other)
    f = cs.find()
    assert f.calibration is None
    assert "made on other hardware" in f.message and "Some Other CPU" in f.message


def test_a_matching_file_is_found_under_another_name(dirs):
    user, proj = dirs
    cal_file(proj / "renamed-host.json", dict(cs.this_host(), hostname="renamed-host"))
    f = cs.find()
    assert f.calibration is not None and f.source == "project"
    assert f.path.endswith("renamed-host.json") and "matches this host" in f.message


def test_lookup_order(dirs, tmp_path, monkeypatch):
    user, proj = dirs
    host = cs.this_host()
    cal_file(proj / "p.json", host, trap=1)
    cal_file(user / "u.json", host, trap=2)
    assert cs.find().calibration["costs"]["trap"]["ns"] == 2          # the user's before the project's
    env = cal_file(tmp_path / "env.json", dict(host, cpu="elsewhere"), trap=3)
    monkeypatch.setenv("MMBENCH_CALIBRATION", str(env))
    f = cs.find()
    assert f.calibration["costs"]["trap"]["ns"] == 3 and f.source == "$MMBENCH_CALIBRATION"
    assert "warning: made on other hardware" in f.message             # named explicitly: used, said
    explicit = cal_file(tmp_path / "x.json", host, trap=4)
    assert cs.find(explicit).calibration["costs"]["trap"]["ns"] == 4   # the option before all
    monkeypatch.setenv("MMBENCH_CALIBRATION", str(tmp_path / "missing.json"))
    with pytest.raises(errors.InvalidArgument, match="MMBENCH_CALIBRATION"):
        cs.find()


def test_same_from_another_directory(dirs, tmp_path):
    """`mmbench run` from elsewhere finds the same calibration and says so on the terminal."""
    user, _ = dirs
    cal_file(user / "mine.json", cs.this_host())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "mmbench.cli", "run", "--profile", "tiny", "-b", "reference",
                        "-w", "seq_first_touch", "-o", "r.json"], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"calibration: {user / 'mine.json'}" in p.stderr
    doc = json.loads((elsewhere / "r.json").read_text())
    assert doc["calibration"] == str(user / "mine.json")
    assert any(r["kind"] == "estimated" for r in doc["records"])


def test_run_says_why_there_is_no_calibration(dirs, tmp_path):
    r = CLI.invoke(app, ["run", "--profile", "tiny", "-b", "reference", "-w", "dense",
                         "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "no calibration: no calibration for this host in" in r.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["calibration"] is None and any(n.startswith("no calibration") for n in doc["notes"])


def test_run_with_an_unreadable_calibration_option_fails(dirs, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CLI.invoke(app, ["run", "--profile", "tiny", "-b", "reference", "-w", "dense", "--calibration",
                         str(bad), "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 2 and "bad.json" in r.output


def test_calibrate_if_missing_does_nothing_when_found(dirs):
    user, _ = dirs
    cal_file(user / "mine.json", cs.this_host())
    r = CLI.invoke(app, ["calibrate", "--if-missing", "--quick"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"calibration: {user / 'mine.json'} (user directory, matches this host's CPU and kernel)"


def test_calibrate_writes_to_the_user_directory_by_default(dirs):
    user, _ = dirs
    assert cs.default_output() == str(user / f"{cs.this_host()['hostname']}.json")
