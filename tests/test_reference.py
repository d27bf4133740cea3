"""The reference model is the specification: these pin its semantics down."""
import pytest

import mmbench
from mmbench import errors


@pytest.fixture
def m():
    return mmbench.open("reference")


def test_private_cow_across_fork(m):
    p = m.spawn()
    m.mmap(p, 10, 4)
    m.write(p, 11, 5)
    c = m.fork(p)
    assert (p, c) == (1, 2)
    m.write(c, 11, 6)
    assert m.read(p, 11) == 5 and m.read(c, 11) == 6
    assert m.read(c, 12) == 0


def test_shared_stays_shared(m):
    p = m.spawn()
    m.mmap(p, 0, 2, shared=True)
    c = m.fork(p)
    m.write(c, 1, 9)
    assert m.read(p, 1) == 9
    m.exit(c)
    assert m.read(p, 1) == 9


def test_errors_and_order(m):
    p = m.spawn()
    with pytest.raises(errors.SegmentationFault):
        m.read(p, 3)
    m.mmap(p, 0, 4, writable=False)
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 0, 1)
    with pytest.raises(errors.InvalidArgument):
        m.mmap(p, 3, 2)
    with pytest.raises(errors.InvalidArgument):
        m.mprotect(p, 2, 5, True)       # vpn 4 unmapped: nothing changes
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 2, 1)
    with pytest.raises(errors.NoSuchProcess):
        m.fork(7)
    with pytest.raises(errors.InvalidArgument):
        m.read(p, -1)
    with pytest.raises(errors.InvalidArgument):
        m.read(p, mmbench.VPN_LIMIT)
    with pytest.raises(errors.InvalidArgument):
        m.device_read(1, p, 0)          # devices=0: device 1 does not exist
    m2 = mmbench.open("reference", devices=1)
    q = m2.spawn()
    with pytest.raises(errors.SegmentationFault):
        m2.device_read(1, q, 0)


def test_munmap_split_mremap_dontneed(m):
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, v + 100)
    m.munmap(p, 3, 2)
    with pytest.raises(errors.SegmentationFault):
        m.read(p, 3)
    m.mremap(p, 5, 3, 20)
    assert [m.read(p, v) for v in (20, 21, 22)] == [105, 106, 107]
    with pytest.raises(errors.SegmentationFault):
        m.read(p, 5)
    with pytest.raises(errors.InvalidArgument):
        m.mremap(p, 20, 3, 21)         # overlap
    m.madvise_dontneed(p, 0, 3)
    assert m.read(p, 1) == 0


def test_pids_never_reused(m):
    a = m.spawn()
    m.exit(a)
    b = m.spawn()
    assert b == a + 1
    with pytest.raises(errors.NoSuchProcess):
        m.read(a, 0)


def test_replay_matches_per_op(m):
    t = mmbench.TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 4)
    t.write(p, 1, 77)
    c = t.fork(p)
    t.write(c, 1, 78)
    t.read(p, 1)
    t.read(c, 1)
    t.read(c, 9)
    df = m.replay(t.build())
    assert df["value"].to_list()[-3:-1] == [77, 78]
    assert df["status"].to_list()[-1] == -1      # SegmentationFault recorded, not raised
    assert df["value"].to_list()[0] == 1 and df["value"].to_list()[3] == 2
