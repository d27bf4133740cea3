"""The simulator's own speed and memory benchmarks (workloads/simspeed.py): their set-ups
must keep working for every configuration they name (asv only runs them on demand)."""
import pytest

from mmbench.workloads import simspeed


def test_parse_config_converts_numbers_and_booleans():
    assert simspeed.parse_config(["gmem", "devices=1", "granularity_pages=1"]) == \
        ("gmem", {"devices": 1, "granularity_pages": 1})
    assert simspeed.parse_config(["uvm", "amap_chunk=False"]) == ("uvm", {"amap_chunk": False})
    assert simspeed.parse_config(["freebsd", "thp=never"]) == ("freebsd", {"thp": "never"})


@pytest.mark.parametrize("config", simspeed.CONFIGS)
def test_every_config_opens_and_first_touch_makes_its_pages_resident(config):
    backend, options = simspeed.parse_config(config.split())
    m, trace = simspeed.first_touch(backend, pages=512, **options)
    before = m.frames_used(0)
    m.replay(trace, timing=False, frame=False)
    assert m.frames_used(0) - before >= 512     # each page written once (plus any table pages)
    m.check()
    assert simspeed.bytes_per_page(m, trace[:0]) is None    # nothing made resident: no figure
