"""index.html renders in a real browser: every table present, every chart decoded.

Opens the page generated from the fixture in headless Chromium (Debian's
``chromium`` package).  When it is missing the test installs it with apt-get
if it runs as root and ``MMBENCH_NO_INSTALL`` is not set; otherwise it skips,
saying why.  The screenshot is kept next to the page (and copied to
``$MMBENCH_SCREENSHOT_DIR`` when that is set) so a person can look at it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mmbench import report
from mmbench.report_page import asv_history
from mmbench.report_plots import CHARTS

from report_fixture import make_doc, write_asv

BROWSERS = ("chromium", "chromium-browser")

# Appended to a copy of the page: writes what the browser made of the images into the DOM.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement('div');
  d.id = 'mmbench-probe';
  d.setAttribute('data-images', imgs.length);
  d.setAttribute('data-decoded', ok);
  d.setAttribute('data-tables', document.querySelectorAll('table').length);
  d.setAttribute('data-rows', document.querySelectorAll('tbody tr').length);
  document.body.appendChild(d);
});
</script>"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("MMBENCH_NO_INSTALL"):
        pytest.skip("headless Chromium is not installed and MMBENCH_NO_INSTALL forbids installing it")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium is not installed and this user cannot apt-get install chromium")
    run = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True,
                         timeout=1800)
    path = shutil.which("chromium")
    if run.returncode != 0 or not path:
        pytest.skip(f"apt-get install chromium failed: {(run.stderr or run.stdout).strip()[-300:]}")
    return path


def _chromium(browser, profile, *args, timeout=240):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    src = d / "results.json"
    src.write_text(json.dumps(make_doc()))
    write_asv(d / "asv")
    written = report.write_report(src, d / "results", asv_dir=d / "asv")
    return written, d


def test_index_html_renders_in_headless_chromium(page):
    written, d = page
    browser = _browser()
    html = Path(written["index.html"])
    text = html.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text  # self-contained
    probe = d / "probe.html"
    probe.write_text(text.replace("</body>", PROBE + "</body>"))
    run = _chromium(browser, d / "profile", "--dump-dom", probe.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r'id="mmbench-probe" data-images="(\d+)" data-decoded="(\d+)" '
                  r'data-tables="(\d+)" data-rows="(\d+)"', run.stdout)
    assert m, "the probe did not run: " + run.stdout[-500:]
    images, decoded, tables, rows = map(int, m.groups())
    doc = make_doc()
    expected = [t for t in report.build_tables(doc, "linux") if report.is_headline(t)]
    expected += asv_history(d / "asv")
    from mmbench import report_whatifs
    whatifs = report_whatifs.tables(doc)          # the What-ifs section's own tables
    assert tables == len(expected) + len(whatifs)
    assert rows == sum(len(t.text_rows()) for t in expected) + sum(len(w[2]) for w in whatifs)
    assert images == len(CHARTS) and decoded == images  # every chart drawn and decoded

    shot = d / "index.png"
    run = _chromium(browser, d / "profile", f"--screenshot={shot}", "--window-size=1280,2400",
                    html.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # text and tables, not a blank page
    keep = os.environ.get("MMBENCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "index.png")
