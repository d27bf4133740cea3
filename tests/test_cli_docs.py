"""The newcomer's documents say what the code does."""
from __future__ import annotations

import re
from pathlib import Path

from mmbench import estimate

ROOT = Path(__file__).resolve().parents[1]


def test_writing_a_backend_lists_every_priced_event():
    text = (ROOT / "docs" / "writing-a-backend.md").read_text()
    section = text.split("## 4. The counters the estimator prices", 1)[1].split("\n## ", 1)[0]
    for cost, (_what, keys) in estimate.COSTS.items():
        assert f"`{cost}`" in section, cost
        for k in keys:
            shown = "`alloc:<any other struct>`" if k == "alloc:*" else f"`{k}`"
            assert shown in section, k


def test_readme_opens_with_the_two_command_quickstart():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    cmds = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert cmds == ["make compare", "make test"]
    assert text.index("```sh") < text.index("## ")
    assert "metadata()" in text and "(count, bytes)" in text
