"""The "flat" design: the simplest honest memory manager, as an mmbench plugin.

Each process owns one flat page table: a dict from virtual page number to a
page-table entry.  There are no VMAs — an entry exists for every mapped page
and records its protection, whether it is shared, and the frame behind it (or
none yet).  It is the design an operating-systems course starts from, and the
baseline every real design improves on:

    process 1: {vpn -> Pte} ──┐        frames (struct page)
    process 2: {vpn -> Pte} ──┼──────> Frame(value, mapcount)
                              │          (shared pages: one frame, many PTEs)

* Private pages are filled lazily: a read of an untouched page maps the shared
  zero page, the first write allocates and zeroes a frame.
* Shared pages get their frame at mmap time, so a fork before the first touch
  still shares one frame.
* fork copies the whole table and *every touched private page* eagerly — no
  copy-on-write.  That is the point of the design: fork costs a copy per
  resident page, faults after fork cost nothing extra.
* munmap / exit / madvise_dontneed drop frames; a frame is freed when its last
  PTE goes (mapcount reaches 0).

Costs are reported in the shared counter vocabulary (faults by kind, pages
zeroed and copied, PTE writes and zaps, PTEs copied by fork) and metadata in
bytes of this design's own structs: an 8-byte PTE per mapped page, a 64-byte
page descriptor per frame, a 64-byte mm per process.

Written in pure Python against mmbench.Machine's ``do_*`` hooks: it runs
through the same engine and conformance suite as the Cython designs, only
slower.
"""
from __future__ import annotations

from mmbench import Machine, errors

__all__ = ["FlatMachine"]

PTE_BYTES = 8       # one flat entry
PAGE_BYTES = 64     # a frame descriptor (struct page)
MM_BYTES = 64       # the per-process table header


class Frame:
    """One physical page: the 64-bit token it holds and how many PTEs map it."""
    __slots__ = ("value", "mapcount")

    def __init__(self, value=0):
        self.value = value
        self.mapcount = 1


ZERO_PAGE = Frame()  # shared, read-only, never counted as allocated


class Pte:
    """One mapped page of one process."""
    __slots__ = ("shared", "writable", "frame")

    def __init__(self, shared, writable, frame=None):
        self.shared = shared
        self.writable = writable
        self.frame = frame           # None (never touched), ZERO_PAGE, or a Frame


class FlatMachine(Machine):
    name = "flat"
    description = "example plugin: one flat page table per process, eager copy at fork"
    option_defaults = {}
    supports_devices = False
    counter_names = ("faults", "fault_zero_page", "fault_zero_fill", "pages_zeroed", "pages_copied",
                     "pte_writes", "pte_zaps", "fork_ptes_copied")

    def __init__(self, **kw):
        super().__init__(**kw)
        self.mm: dict[int, dict[int, Pte]] = {}
        self.nr_frames = 0
        self.events = dict.fromkeys(self.counter_names, 0)

    # ---------------------------------------------------------- frames
    def _frame_alloc(self, value=0):
        if self.nr_frames >= self.ram_pages:
            raise errors.OutOfMemory("no free frame")
        self.nr_frames += 1
        return Frame(value)

    def _frame_put(self, frame):
        if frame is None or frame is ZERO_PAGE:
            return
        frame.mapcount -= 1
        if frame.mapcount == 0:
            self.nr_frames -= 1

    def _zap(self, pte):
        if pte.frame is not None:
            self.events["pte_zaps"] += 1
            self.events["pte_writes"] += 1
        self._frame_put(pte.frame)

    def _all_mapped(self, table, vpn, n):
        return all(v in table for v in range(vpn, vpn + n))

    # ---------------------------------------------------------- the contract
    def do_spawn(self, pid):
        self.mm[pid] = {}

    def do_mmap(self, pid, vpn, n, shared, writable):
        table = self.mm[pid]
        if any(v in table for v in range(vpn, vpn + n)):
            raise errors.InvalidArgument("mmap over an existing mapping")
        if shared and self.nr_frames + n > self.ram_pages:
            raise errors.OutOfMemory("no free frame for the shared mapping")
        for v in range(vpn, vpn + n):
            table[v] = Pte(shared, writable, self._frame_alloc() if shared else None)
        if shared:
            self.events["pages_zeroed"] += n

    def do_munmap(self, pid, vpn, n):
        table = self.mm[pid]
        for v in range(vpn, vpn + n):
            pte = table.pop(v, None)
            if pte is not None:
                self._zap(pte)

    def do_mprotect(self, pid, vpn, n, writable):
        table = self.mm[pid]
        if not self._all_mapped(table, vpn, n):
            raise errors.InvalidArgument("mprotect over unmapped pages")
        for v in range(vpn, vpn + n):
            table[v].writable = writable

    def _pte(self, pid, vpn):
        pte = self.mm[pid].get(vpn)
        if pte is None:
            raise errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        return pte

    def do_read(self, pid, vpn):
        pte = self._pte(pid, vpn)
        if pte.frame is None:                  # read fault: map the zero page
            pte.frame = ZERO_PAGE
            self.events["faults"] += 1
            self.events["fault_zero_page"] += 1
            self.events["pte_writes"] += 1
        return pte.frame.value

    def do_write(self, pid, vpn, value):
        pte = self._pte(pid, vpn)
        if not pte.writable:
            raise errors.ProtectionFault(f"pid {pid}: vpn {vpn} is read-only")
        if pte.frame is None or pte.frame is ZERO_PAGE:   # write fault: zero-fill
            pte.frame = self._frame_alloc()
            self.events["faults"] += 1
            self.events["fault_zero_fill"] += 1
            self.events["pages_zeroed"] += 1
            self.events["pte_writes"] += 1
        pte.frame.value = value

    def do_fork(self, pid, child):
        parent = self.mm[pid]
        copies = sum(1 for p in parent.values()
                     if not p.shared and p.frame is not None and p.frame is not ZERO_PAGE)
        if self.nr_frames + copies > self.ram_pages:      # check first: a failed fork changes nothing
            raise errors.OutOfMemory("not enough frames to copy the address space")
        table = {}
        for v, p in parent.items():
            frame = p.frame
            if p.shared:
                frame.mapcount += 1
            elif frame is not None and frame is not ZERO_PAGE:
                frame = self._frame_alloc(frame.value)
                self.events["pages_copied"] += 1
            table[v] = Pte(p.shared, p.writable, frame)
            if frame is not None:
                self.events["fork_ptes_copied"] += 1
                self.events["pte_writes"] += 1
        self.mm[child] = table

    def do_exit(self, pid):
        for pte in self.mm.pop(pid).values():
            self._zap(pte)

    def do_mremap(self, pid, old, n, new):
        table = self.mm[pid]
        if new < old + n and old < new + n:
            raise errors.InvalidArgument("mremap ranges overlap")
        if not self._all_mapped(table, old, n):
            raise errors.SegmentationFault("mremap of unmapped pages")
        if any(v in table for v in range(new, new + n)):
            raise errors.InvalidArgument("mremap onto an existing mapping")
        for i in range(n):
            pte = table.pop(old + i)
            table[new + i] = pte
            if pte.frame is not None:
                self.events["pte_writes"] += 2           # cleared at old, set at new

    def do_madvise_dontneed(self, pid, vpn, n):
        table = self.mm[pid]
        if not self._all_mapped(table, vpn, n):
            raise errors.InvalidArgument("madvise over unmapped pages")
        for v in range(vpn, vpn + n):
            pte = table[v]
            if not pte.shared and pte.frame is not None:
                self._zap(pte)
                pte.frame = None

    # ---------------------------------------------------------- observability
    def do_check(self):
        maps: dict[int, int] = {}
        frames: dict[int, Frame] = {}
        for pid, table in self.mm.items():
            if pid not in self.live_pids():
                raise errors.InvariantViolation(f"table of dead pid {pid}")
            for v, pte in table.items():
                f = pte.frame
                if pte.shared and (f is None or f is ZERO_PAGE):
                    raise errors.InvariantViolation(f"pid {pid} vpn {v}: shared page without a frame")
                if f is not None and f is not ZERO_PAGE:
                    maps[id(f)] = maps.get(id(f), 0) + 1
                    frames[id(f)] = f
        for key, f in frames.items():
            if f.mapcount != maps[key]:
                raise errors.InvariantViolation(f"frame mapcount {f.mapcount}, mapped {maps[key]} times")
        if len(frames) != self.nr_frames:
            raise errors.InvariantViolation(f"{self.nr_frames} frames accounted, {len(frames)} mapped")

    def metadata(self):
        ptes = sum(len(t) for t in self.mm.values())
        return {"mm": (len(self.mm), len(self.mm) * MM_BYTES),
                "pte": (ptes, ptes * PTE_BYTES),
                "page": (self.nr_frames, self.nr_frames * PAGE_BYTES)}

    def struct_sizes(self):
        return {"mm": MM_BYTES, "pte": PTE_BYTES, "page": PAGE_BYTES}

    def per_process_structs(self):
        return ["mm", "pte", "page"]

    def counters(self):
        return dict(self.events)

    def frames_used(self, node=0):
        if node != 0:
            raise errors.InvalidArgument(f"node {node} does not exist")
        return self.nr_frames

    def leaks(self):
        out = list(super().leaks())
        out += [f"{name}: {count} live" for name, (count, _) in self.metadata().items() if count]
        return out
