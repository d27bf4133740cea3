"""The reference model: the single, executable definition of what every design must do.

It is deliberately naive — one dict per process mapping a vpn to a page — so it
can be read as the specification.  Designs differ only in cost; for any
sequence of operations each must agree with this model on every observable:
the values read, the errors raised, the pids handed out and (checked by the
conformance suite) that nothing stays allocated once every process exited.

The semantics (those of Linux userspace, anonymous memory only):

* ``spawn()``: a new empty address space.  Pids are 1, 2, 3 … in creation
  order (spawn and fork share the counter) and are never reused.
* ``mmap(pid, vpn, n, shared, writable)``: every page in [vpn, vpn+n) must be
  unmapped, else InvalidArgument.  New pages read as 0.
* ``munmap(pid, vpn, n)``: unmaps whatever is mapped in the range (holes are
  fine; partial unmaps split mappings).  Never fails for a valid range.
* ``mprotect(pid, vpn, n, writable)``: every page must be mapped, else
  InvalidArgument and nothing changes.
* ``read(pid, vpn)``: SegmentationFault when unmapped; else the last value
  written to that page as this process sees it (0 if never written).
* ``write(pid, vpn, v)``: SegmentationFault when unmapped, ProtectionFault when
  not writable; else stores the 64-bit value.
* ``fork(pid)``: the child gets every mapping with the same protections.
  Private pages are copies (copy-on-write: later writes on either side are not
  seen by the other); shared pages stay one page seen by both.
* ``exit(pid)``: the process and its mappings are gone; shared pages live on
  while another process maps them.
* ``mremap(pid, old, n, new)``: [new, new+n) must not overlap [old, old+n)
  (InvalidArgument), every old page must be mapped (SegmentationFault), every
  new page unmapped (InvalidArgument).  Pages move with their contents,
  protections and sharing; the old range becomes unmapped.
* ``madvise_dontneed(pid, vpn, n)``: every page must be mapped, else
  InvalidArgument.  Private pages then read 0; shared pages keep their data.
* ``madvise(pid, vpn, n, advice)``: DONTNEED is ``madvise_dontneed``.
  HUGEPAGE / NOHUGEPAGE: every page must be mapped, else InvalidArgument;
  they change how a design backs the range, never a value.  The ``thp``
  design option (``mmbench.hugepages``) likewise changes no observable.
* ``move_pages(pid, src, dst, n)`` (userfaultfd's UFFDIO_MOVE inside one
  process): checked in this order -- the ranges overlap: InvalidArgument; a
  page of either range is unmapped: SegmentationFault; a page of either range
  is shared or read-only: InvalidArgument (the kernel's -EINVAL: only private
  anonymous writable memory moves); a destination page holds something (reads
  non-zero): InvalidArgument (the kernel's -EEXIST; the contract cannot tell a
  page never written from one holding 0, so "holds nothing" means "reads 0").
  Then each destination page takes its source page's value, privately, and each
  source page reads 0 afterwards (its PTE is gone, as after MADV_DONTNEED); both
  ranges stay mapped.  A source page that reads 0 moves as a hole (the kernel's
  UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: whether a page is populated is not
  observable here).  One failure is optional: a design that moves pages
  without copying may raise PageBusy, changing nothing, when a source page is
  *inherited* -- its data came through a fork (as parent or child) and this
  process has not written it since (the kernel's PageAnonExclusive is clear:
  -EBUSY).  ``move_pages_may_busy`` says when that is allowed; a design that
  copies never raises it, and neither does this model.  A design that copies
  must read the destination to refuse it for holding data, and reading may
  fault pages in: that refusal changes no value, but may change structures
  (the conformance suite compares values only there).
* ``migrate(pid, vpn, n, node)``: every page must be mapped, else
  InvalidArgument.  Never changes a value.
* ``device_read(dev, pid, vpn)`` / ``device_write(dev, pid, vpn, v)``: an
  accelerator accesses the process's memory with the same rules as read/write.

Arguments are checked by the framework first, in this order: device, pid
(NoSuchProcess), range (InvalidArgument: vpn >= 0, n >= 1, vpn+n <= 2**36),
node.  OutOfMemory depends on how a design spends frames and is not part of the
model; the conformance suite runs with enough memory that it cannot occur.
"""
from __future__ import annotations

from mmbench import errors
from mmbench.core import Machine


class _Page:
    """One mapped page of one process: its protection and its storage cell."""
    __slots__ = ("shared", "writable", "cell", "inherited")

    def __init__(self, shared, writable, cell, inherited=False):
        self.shared = shared
        self.writable = writable
        self.cell = cell          # a one-element list; shared pages share the list
        self.inherited = inherited  # private: data came through a fork, not written since


class ReferenceMachine(Machine):
    """The reference model as a (pure-Python) backend."""

    name = "reference"
    description = "the executable specification: a dict of pages per process (no costs)"
    supports_devices = True
    huge_page_advice = True
    counter_names = ()

    def __init__(self, **kw):
        super().__init__(**kw)
        self.procs_ref: dict[int, dict[int, _Page]] = {}

    # helpers.  Work is bounded by the pages a process maps, never by the size of the
    # range asked for: a range of 2**36 pages over a process mapping ten is ten steps.
    def _mapped_all(self, pages, vpn, n):
        if n > len(pages):
            return False          # fewer pages mapped than the range holds
        return all(v in pages for v in range(vpn, vpn + n))

    @staticmethod
    def _mapped_in(pages, vpn, n):
        """The mapped vpns of [vpn, vpn+n), in no order: the smaller of the range and the map."""
        if n <= len(pages):
            return [v for v in range(vpn, vpn + n) if v in pages]
        return [v for v in pages if vpn <= v < vpn + n]

    def do_spawn(self, pid):
        self.procs_ref[pid] = {}

    def do_mmap(self, pid, vpn, n, shared, writable):
        pages = self.procs_ref[pid]
        if self._mapped_in(pages, vpn, n):
            raise errors.InvalidArgument("mmap over an existing mapping")
        for v in range(vpn, vpn + n):
            pages[v] = _Page(shared, writable, [0])

    def do_munmap(self, pid, vpn, n):
        pages = self.procs_ref[pid]
        for v in self._mapped_in(pages, vpn, n):
            del pages[v]

    def do_mprotect(self, pid, vpn, n, writable):
        pages = self.procs_ref[pid]
        if not self._mapped_all(pages, vpn, n):
            raise errors.InvalidArgument("mprotect over unmapped pages")
        for v in range(vpn, vpn + n):
            pages[v].writable = writable

    def _page(self, pid, vpn):
        p = self.procs_ref[pid].get(vpn)
        if p is None:
            raise errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        return p

    def do_read(self, pid, vpn):
        return self._page(pid, vpn).cell[0]

    def do_write(self, pid, vpn, value):
        p = self._page(pid, vpn)
        if not p.writable:
            raise errors.ProtectionFault(f"pid {pid}: vpn {vpn} is read-only")
        p.cell[0] = value
        p.inherited = False

    def do_fork(self, pid, child):
        parent = self.procs_ref[pid]
        for p in parent.values():
            p.inherited = not p.shared
        self.procs_ref[child] = {
            v: _Page(p.shared, p.writable, p.cell if p.shared else [p.cell[0]], not p.shared)
            for v, p in parent.items()}

    def do_exit(self, pid):
        del self.procs_ref[pid]

    def do_mremap(self, pid, old, n, new):
        pages = self.procs_ref[pid]
        if new < old + n and old < new + n:
            raise errors.InvalidArgument("mremap ranges overlap")
        if not self._mapped_all(pages, old, n):
            raise errors.SegmentationFault("mremap of unmapped pages")
        if self._mapped_in(pages, new, n):
            raise errors.InvalidArgument("mremap onto an existing mapping")
        for i in range(n):
            pages[new + i] = pages.pop(old + i)

    def do_madvise_dontneed(self, pid, vpn, n):
        pages = self.procs_ref[pid]
        if not self._mapped_all(pages, vpn, n):
            raise errors.InvalidArgument("madvise over unmapped pages")
        for v in range(vpn, vpn + n):
            if not pages[v].shared:
                pages[v].cell = [0]
                pages[v].inherited = False

    def move_pages_refusal(self, pid, src, dst, n):
        """Why move_pages refuses, in the model's order of checks: "overlap",
        "unmapped", "kind" (shared or read-only), "dst_data" (a destination page
        reads non-zero), or None when it moves."""
        pages = self.procs_ref[self._pid(pid)]
        if dst < src + n and src < dst + n:
            return "overlap"
        if not (self._mapped_all(pages, src, n) and self._mapped_all(pages, dst, n)):
            return "unmapped"
        for v in (*range(src, src + n), *range(dst, dst + n)):
            if pages[v].shared or not pages[v].writable:
                return "kind"
        if any(pages[v].cell[0] for v in range(dst, dst + n)):
            return "dst_data"
        return None

    def _move_pages_status(self, pid, src, dst, n):
        """None when the move may run, else the exception to raise."""
        why = self.move_pages_refusal(pid, src, dst, n)
        return None if why is None else {
            "overlap": errors.InvalidArgument("move_pages ranges overlap"),
            "unmapped": errors.SegmentationFault("move_pages of unmapped pages"),
            "kind": errors.InvalidArgument("move_pages over a shared or read-only page"),
            "dst_data": errors.InvalidArgument("move_pages onto a page that holds data")}[why]

    def move_pages_may_busy(self, pid, src, dst, n):
        """May a design refuse this move_pages with PageBusy?  Only when every other
        check passes and a source page is inherited (shared copy-on-write since a
        fork, whatever value it holds)."""
        pid = self._pid(pid)
        if self.move_pages_refusal(pid, src, dst, n) is not None:
            return False
        pages = self.procs_ref[pid]
        return any(pages[v].inherited for v in range(src, src + n))

    def do_move_pages(self, pid, src, dst, n):
        err = self._move_pages_status(pid, src, dst, n)
        if err is not None:
            raise err
        pages = self.procs_ref[pid]
        for i in range(n):
            s, d = pages[src + i], pages[dst + i]
            d.cell, d.inherited = [s.cell[0]], False
            s.cell, s.inherited = [0], False

    def do_madvise(self, pid, vpn, n, advice):
        # DONTNEED reaches do_madvise_dontneed through Machine.c_madvise
        if not self._mapped_all(self.procs_ref[pid], vpn, n):
            raise errors.InvalidArgument("madvise over unmapped pages")

    def do_migrate(self, pid, vpn, n, node):
        if not self._mapped_all(self.procs_ref[pid], vpn, n):
            raise errors.InvalidArgument("migrate of unmapped pages")

    def do_device_read(self, dev, pid, vpn):
        return self.do_read(pid, vpn)

    def do_device_write(self, dev, pid, vpn, value):
        self.do_write(pid, vpn, value)

    def mappings(self, pid):
        """Runs of consecutive pages with the same sharing and protection (the model keeps
        pages, not mappings, so two adjacent mmaps of the same kind read as one)."""
        with self.held():
            pid = self._pid(pid)
            out = []
            for v, p in sorted(self.procs_ref.get(pid, {}).items()):
                if out and out[-1][0] + out[-1][1] == v and out[-1][2:] == (p.shared, p.writable):
                    out[-1] = (out[-1][0], out[-1][1] + 1, p.shared, p.writable)
                else:
                    out.append((v, 1, p.shared, p.writable))
            return out

    def notes(self):
        with self.held():
            return ["the reference model has no costs: thp and huge-page advice change nothing here"]

    def do_check(self):
        for pid in self.procs_ref:
            if pid not in self.live_pids():
                raise errors.InvariantViolation(f"reference holds dead pid {pid}")
