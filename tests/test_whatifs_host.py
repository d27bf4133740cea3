"""The what-ifs' defaults against this host's kernel (a host check beats a belief).

A fresh interpreter (never a fork of the pytest process) replays on the host, with
real mmap / munmap / mremap / userfaultfd calls, what tests/test_whatifs*.py run on
the linux design, and reports VMA counts from /proc/self/maps and UFFDIO_MOVE's
answers; the model must give the same:

* Hildenbrand's two examples end as one VMA with today's pgoff (= the address);
* a faulted VMA mremap'd next to a faulted one stays two VMAs (pgoff kept);
* UFFDIO_MOVE refuses a page inherited through a fork with -EBUSY even once the
  child exited, and moves it once written again (PageAnonExclusive), refuses a
  populated destination (-EEXIST).
"""
import ctypes
import errno
import json
import os
import struct
import subprocess
import sys

import pytest

import mmbench
from mmbench import errors

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux host")

P = 4096
UFFDIO_API, UFFDIO_REGISTER, UFFDIO_MOVE = 0xC018AA3F, 0xC020AA00, 0xC028AA05
UFFD_FEATURE_MOVE, UFFDIO_REGISTER_MODE_MISSING = 1 << 16, 1
SYS_userfaultfd = 323                          # x86_64


def _host_probe():
    """Runs in a fresh interpreter: prints a JSON dict of what the host kernel did."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mremap.restype = ctypes.c_void_p
    libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
    libc.syscall.restype = ctypes.c_long
    libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    out = {}

    def mmap(addr, n, shared=False):
        flags = (0x1 if shared else 0x2) | 0x20 | (0x10 if addr else 0)     # MAP_FIXED when placed
        r = libc.mmap(addr, n * P, 3, flags, -1, 0)
        if r is None or r == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap")
        return r

    def vmas(lo, n):
        hi, k = lo + n * P, 0
        for line in open("/proc/self/maps"):
            a, b = (int(x, 16) for x in line.split()[0].split("-"))
            k += a < hi and b > lo
        return k

    def put(addr, v):
        ctypes.c_uint64.from_address(addr).value = v

    base = mmap(None, 256)
    libc.munmap(base, 256 * P)
    # [anon0][fd][anon1]: unmap the "fd" (a shmem mapping), mmap anon into the hole
    mmap(base, 16), mmap(base + 16 * P, 16, shared=True), mmap(base + 32 * P, 16)
    put(base, 1)
    libc.munmap(base + 16 * P, 16 * P)
    mmap(base + 16 * P, 16)
    out["hole"] = vmas(base, 48)
    libc.munmap(base, 48 * P)
    # [anon0], mmap anon right before it
    mmap(base + 100 * P, 16)
    put(base + 100 * P, 5)
    mmap(base + 84 * P, 16)
    out["before"] = vmas(base + 84 * P, 32)
    libc.munmap(base + 84 * P, 32 * P)
    # a faulted VMA mremap'd right after a faulted one
    mmap(base, 16)
    put(base, 1)
    b = mmap(base + 100 * P, 16)
    put(b, 7)
    libc.mremap(b, 16 * P, 16 * P, 3, base + 16 * P)      # MREMAP_MAYMOVE | MREMAP_FIXED
    out["mremap_next_to"] = vmas(base, 32)
    libc.munmap(base, 32 * P)
    # UFFDIO_MOVE
    fd = libc.syscall(SYS_userfaultfd, os.O_CLOEXEC | os.O_NONBLOCK)
    api = ctypes.create_string_buffer(struct.pack("QQQ", 0xAA, UFFD_FEATURE_MOVE, 0))
    if fd < 0 or libc.ioctl(fd, UFFDIO_API, api) != 0:
        out["uffd"] = f"userfaultfd with UFFD_FEATURE_MOVE unavailable (errno {ctypes.get_errno()})"
        print(json.dumps(out))
        return
    src, dst = mmap(base, 4), mmap(base + 64 * P, 4)
    reg = ctypes.create_string_buffer(struct.pack("QQQQ", dst, 4 * P, UFFDIO_REGISTER_MODE_MISSING, 0))
    assert libc.ioctl(fd, UFFDIO_REGISTER, reg) == 0

    def move(d, s):
        buf = ctypes.create_string_buffer(struct.pack("QQQQq", d, s, P, 0, 0))
        return 0 if libc.ioctl(fd, UFFDIO_MOVE, buf) == 0 else ctypes.get_errno()

    put(src, 11)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    out["inherited"] = move(dst, src)
    put(src, 12)
    out["written_again"] = move(dst, src)
    out["moved_value"] = ctypes.c_uint64.from_address(dst).value
    put(src + P, 13)
    out["dst_populated"] = move(dst, src + P)
    print(json.dumps(out))


def host():
    code = ("import sys; sys.path.insert(0, %r); import test_whatifs_host as t; t._host_probe()"
            % os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def h():
    return host()


def model_vmas(build):
    m = mmbench.open("linux", ram_pages=1 << 12)
    p = m.spawn()
    build(m, p)
    m.check()
    return len(m.vmas(p))


def test_vma_merges_match_the_host(h):
    def hole(m, p):
        m.mmap(p, 0, 16), m.mmap(p, 16, 16, shared=True), m.mmap(p, 32, 16)
        m.write(p, 0, 1)
        m.munmap(p, 16, 16)
        m.mmap(p, 16, 16)

    def before(m, p):
        m.mmap(p, 100, 16)
        m.write(p, 100, 5)
        m.mmap(p, 84, 16)

    def mremap_next_to(m, p):
        m.mmap(p, 0, 16)
        m.write(p, 0, 1)
        m.mmap(p, 100, 16)
        m.write(p, 100, 7)
        m.mremap(p, 100, 16, 16)

    assert (h["hole"], h["before"], h["mremap_next_to"]) == (1, 1, 2)
    assert (model_vmas(hole), model_vmas(before), model_vmas(mremap_next_to)) == (1, 1, 2)


def test_uffdio_move_answers_match_the_model(h):
    if "uffd" in h:
        pytest.skip(h["uffd"])
    assert h["inherited"] == errno.EBUSY and h["written_again"] == 0 and h["moved_value"] == 12
    assert h["dst_populated"] == errno.EEXIST
    m = mmbench.open("linux", ram_pages=1 << 12)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.mmap(p, 64, 4)
    m.write(p, 0, 11)
    m.exit(m.fork(p))
    with pytest.raises(errors.PageBusy):
        m.move_pages(p, 0, 64, 1)
    m.write(p, 0, 12)
    m.move_pages(p, 0, 64, 1)
    assert m.read(p, 64) == 12
    m.write(p, 1, 13)
    with pytest.raises(errors.InvalidArgument):
        m.move_pages(p, 1, 64, 1)
    m.check()
