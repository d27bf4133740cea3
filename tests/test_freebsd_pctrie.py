"""The pctrie block against a sorted Python set, with items in an array and in a
numbered table, and its node zone."""
import bisect
import random

import pytest

from mmbench_freebsd.pctrie import PctrieHandle


@pytest.mark.parametrize("numbered", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_pctrie_matches_a_sorted_set(seed, numbered):
    rnd = random.Random(seed)
    t, model = PctrieHandle(numbered=numbered), []
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


@pytest.mark.parametrize("numbered", [False, True])
def test_pctrie_sequential_keys_use_one_node_per_sixteen(numbered):
    t = PctrieHandle(numbered=numbered)
    for k in range(4096):
        t.insert(k)
    t.check()
    assert t.nodes == 256 + 16 + 1
    assert [t.lookup_ge(k) for k in (0, 17, 4095, 4096)] == [0, 17, 4095, None]
    assert t.insert(5) is False


def test_pctrie_zone_hands_freed_nodes_out_again():
    t = PctrieHandle()
    for k in range(4096):
        t.insert(k)
    for k in range(4096):
        t.remove(k)
    t.check()
    assert (t.nodes, t.zone_numbers) == (0, 273)
    for k in reversed(range(4096)):
        t.insert(k)
    t.check()
    assert (t.nodes, t.zone_numbers) == (273, 273)    # the same numbers, given back and taken again


@pytest.mark.parametrize("numbered", [False, True])
def test_pctrie_full_zone_fails_the_insert_and_keeps_the_trie(numbered):
    t = PctrieHandle(numbered=numbered, zone_cap=2)
    for k in (0, 1, 16):                 # a node for 0/1 below one for 0x/1x
        assert t.insert(k)
    with pytest.raises(MemoryError):
        t.insert(256)                    # would need a third node
    t.check()
    assert (t.count, t.nodes) == (3, 2)
    assert t.insert(2) and t.lookup_ge(17) is None    # room in an existing node still
    t.remove(16)                         # gives a node back: 256 fits now
    assert t.insert(256)
    t.check()
