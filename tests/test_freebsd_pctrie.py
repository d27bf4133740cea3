"""The pctrie block against a sorted Python set."""
import bisect
import random

import pytest

from mmbench_freebsd.pctrie import PctrieHandle


@pytest.mark.parametrize("seed", range(8))
def test_pctrie_matches_a_sorted_set(seed):
    rnd = random.Random(seed)
    t, model = PctrieHandle(), []
    width = rnd.choice([8, 16, 40, 64])
    for _ in range(1500):
        key = rnd.getrandbits(width) if rnd.random() < 0.7 else rnd.choice(model or [0])
        op = rnd.random()
        if op < 0.5:
            added = t.insert(key)
            assert added == (key not in model)
            if added:
                bisect.insort(model, key)
        elif op < 0.8:
            removed = t.remove(key)
            assert removed == (key in model)
            if removed:
                model.remove(key)
        else:
            i = bisect.bisect_left(model, key)
            assert t.lookup_ge(key) == (model[i] if i < len(model) else None)
            assert t.lookup(key) == (key in model)
        t.check()
        assert t.count == len(model)
    # path compression: never more nodes than keys - 1
    assert t.nodes <= max(len(model) - 1, 0)


def test_pctrie_sequential_keys_use_one_node_per_sixteen():
    t = PctrieHandle()
    for k in range(4096):
        t.insert(k)
    t.check()
    assert t.nodes == 256 + 16 + 1
    assert [t.lookup_ge(k) for k in (0, 17, 4095, 4096)] == [0, 17, 4095, None]
    assert t.insert(5) is False
