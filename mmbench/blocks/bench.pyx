# mmbench.blocks.bench — Python handles on the building blocks, for tests and
# for the per-block microbenchmarks.
#
# The blocks are nogil C functions over C structs; nothing in them checks its
# arguments (a design validates before it calls them).  This module wraps each
# block in a small cdef class whose methods validate in Python first, so a test
# (or Hypothesis) may throw anything at it without crashing the interpreter,
# and adds a `verify()` that walks the structure and checks every invariant the
# block promises (counts, parent links, ordering, accounting).
#
# The bench_* functions time one block in one nogil loop with the monotonic
# clock and return nanoseconds per operation (measured, on this machine).
# They are called by the asv suite; they never assert anything about speed.

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t, uint64_t, uint32_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from mmbench.blocks.xarray cimport (xarray_t, xa_node_t, xa_init, xa_destroy, xa_load, xa_store,
                                    xa_erase, xa_find, xa_load_slot, xa_find_slot, xa_hint_ok, XA_CHUNK_SIZE, XA_CHUNK_SHIFT)
from mmbench.blocks.pagetable cimport (pgtable_t, pt_node_t, pt_init, pt_destroy, pt_leaf, pt_find_leaf, pt_get,
                                       pt_set, pt_next, pt_free_range, pt_bytes, pt_vmpte_bytes,
                                       mk_pte, PT_ENTRIES, LVL_PTE, PTE_PRESENT, PTE_WRITE)
from mmbench.blocks.itree cimport (itree_t, itnode_t, itree_init, itree_insert, itree_remove, itree_update,
                                   itree_first, itree_next, itree_verify)
from mmbench.blocks.frames cimport (frames_t, pfn_t, frames_init, frames_destroy, frame_alloc,
                                    frame_free, frame_node, frames_free_count, NO_PFN, MAX_NODES)
from mmbench.blocks.pagecache cimport (address_space_t, mapping_init, mapping_lookup, mapping_add,
                                       mapping_remove, mapping_truncate)
from mmbench.blocks.vmaset cimport (vma_span_t, vmaset_lower_bound, vmaset_find, vmaset_fully_mapped,
                                    vmaset_any_mapped, vmaset_reserve, vmaset_insert, vmaset_remove)
from mmbench.blocks.handles cimport (handles_t, handles_init, handles_destroy, handles_take,
                                     handles_put, handles_get, handles_live)
from mmbench.core cimport kmem_cache_t, NR_COUNTERS, C_PV_ENTRIES
from mmbench.blocks.pmap cimport pmap_ctx_t, pmap_ctx_destroy
from mmbench.blocks.pmap_pvchunk cimport (pmap_t, pv_entry_t, pmap_bootstrap, pmap_pinit, pmap_release,
                                          pmap_pv_count, pv_list, pv_list_first, pv_next, pv_va,
                                          pv_pmap, pv_handle_valid)

from mmbench import errors

cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFF
VPN_LIMIT = 1 << 36


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


def _u64(x, what, lo=0, hi=(1 << 64) - 1):
    if isinstance(x, bool) or not isinstance(x, int):
        raise errors.InvalidArgument(f"{what} must be an integer, got {x!r}")
    if not (lo <= x <= hi):
        raise errors.InvalidArgument(f"{what}={x} outside {lo}..{hi}")
    return x


# --------------------------------------------------------------------- xarray
cdef int64_t xa_verify_node(xa_node_t* n, xa_node_t* parent, int offset, int64_t* entries,
                            list bad) except -1:
    """Check one node and below; returns nodes counted."""
    cdef int i, used = 0
    cdef int64_t nodes = 1
    cdef xa_node_t* child
    if n.parent != parent:
        bad.append(f"node shift {n.shift}: wrong parent link")
    if parent != NULL and (n.offset != offset or n.shift + XA_CHUNK_SHIFT != parent.shift):
        bad.append(f"node shift {n.shift}: wrong offset/shift below its parent")
    for i in range(XA_CHUNK_SIZE):
        if n.slots[i] == 0:
            continue
        used += 1
        if n.shift == 0:
            entries[0] += 1
        else:
            child = <xa_node_t*><size_t>n.slots[i]
            nodes += xa_verify_node(child, n, i, entries, bad)
    if used != n.count:
        bad.append(f"node shift {n.shift}: count {n.count} but {used} slots used")
    if used == 0:
        bad.append(f"node shift {n.shift}: empty node left in the tree")
    return nodes


cdef class XArray:
    """One xarray_t: store/load/erase/find, node accounting, verify()."""
    cdef xarray_t xa

    def __cinit__(self):
        xa_init(&self.xa)

    def __dealloc__(self):
        xa_destroy(&self.xa)

    def store(self, index, entry):
        cdef uint64_t i = _u64(index, "index"), e = _u64(entry, "entry")
        if xa_store(&self.xa, i, e) != 0:
            raise MemoryError("xa_store")

    def load(self, index):
        return xa_load(&self.xa, _u64(index, "index"))

    def erase(self, index):
        return xa_erase(&self.xa, _u64(index, "index"))

    def find(self, start, last):
        """(index, entry) of the first entry in [start, last], or None."""
        cdef uint64_t out = 0
        cdef uint64_t e = xa_find(&self.xa, _u64(start, "start"), _u64(last, "last"), &out)
        return None if e == 0 else (out, e)

    def slot(self, index):
        """The address of index's slot (xa_load_slot), 0 when its leaf does not exist."""
        return <size_t>xa_load_slot(&self.xa, _u64(index, "index"))

    def find_slot(self, start, last):
        """(index, slot address) of the first entry in [start, last] (xa_find_slot), or None."""
        cdef uint64_t out = 0
        cdef uint64_t* s = xa_find_slot(&self.xa, _u64(start, "start"), _u64(last, "last"), &out)
        return None if s == NULL else (out, <size_t>s)

    def edit(self, index, entry):
        """Write a non-zero entry over index's entry in place, through its slot."""
        cdef uint64_t e = _u64(entry, "entry")
        cdef uint64_t* s = xa_load_slot(&self.xa, _u64(index, "index"))
        if e == 0 or s == NULL or s[0] == 0:
            raise errors.InvalidArgument("edit: no entry there, or entry 0")
        s[0] = e

    @property
    def nr_nodes(self):
        return self.xa.nr_nodes

    @property
    def nr_entries(self):
        return self.xa.nr_entries

    @property
    def node_allocs(self):
        return self.xa.node_allocs

    @property
    def node_frees(self):
        return self.xa.node_frees

    @property
    def height(self):
        """Levels of nodes (0 for an empty tree)."""
        return 0 if self.xa.root == NULL else self.xa.root.shift // XA_CHUNK_SHIFT + 1

    def verify(self):
        """List of broken invariants ([] when the tree is sound)."""
        cdef list bad = []
        cdef int64_t entries = 0, nodes = 0
        cdef xa_node_t* r = self.xa.root
        if r != NULL:
            nodes = xa_verify_node(r, NULL, 0, &entries, bad)
            if r.shift > 0 and r.count == 1 and r.slots[0] != 0:
                bad.append("root has a single child at slot 0: the tree should have shrunk")
        if nodes != self.xa.nr_nodes:
            bad.append(f"nr_nodes {self.xa.nr_nodes} but {nodes} nodes in the tree")
        if entries != self.xa.nr_entries:
            bad.append(f"nr_entries {self.xa.nr_entries} but {entries} entries in the tree")
        if self.xa.node_allocs - self.xa.node_frees != self.xa.nr_nodes:
            bad.append("node_allocs - node_frees != nr_nodes")
        if not xa_hint_ok(&self.xa):
            bad.append("the walk hint is not the tree's leaf for its range")
        return bad


# ------------------------------------------------------------------ pagetable
cdef int64_t pt_verify_node(pt_node_t* t, int level, int64_t* per_level, list bad) except -1:
    cdef int i, used = 0
    per_level[level] += 1
    for i in range(PT_ENTRIES):
        if t.e[i] == 0:
            continue
        used += 1
        if level < LVL_PTE:
            pt_verify_node(<pt_node_t*><size_t>t.e[i], level + 1, per_level, bad)
    if used != t.used:
        bad.append(f"level {level} table: used {t.used} but {used} entries set")
    return 0


cdef class PageTable:
    """One pgtable_t: set/get entries, walk with pt_next, free_range, table counts."""
    cdef pgtable_t pt
    cdef int64_t allocated          # tables pt_leaf reported allocating

    def __cinit__(self):
        if pt_init(&self.pt) != 0:
            raise MemoryError("pt_init")
        self.allocated = 0

    def __dealloc__(self):
        pt_destroy(&self.pt)

    def set(self, vpn, pte):
        """Write one entry (allocating the tables on the way); returns tables allocated."""
        cdef uint64_t v = _u64(vpn, "vpn", 0, VPN_LIMIT - 1), p = _u64(pte, "pte")
        cdef int64_t n = 0
        cdef pt_node_t* t = pt_leaf(&self.pt, v, p != 0, &n)
        self.allocated += n
        if t == NULL:
            if p != 0:
                raise MemoryError("pt_leaf")
            return 0
        pt_set(t, v, p)
        return n

    def get(self, vpn):
        return pt_get(&self.pt, _u64(vpn, "vpn", 0, VPN_LIMIT - 1))

    def has_leaf(self, vpn):
        return pt_find_leaf(&self.pt, _u64(vpn, "vpn", 0, VPN_LIMIT - 1)) != NULL

    def next(self, start, end):
        """vpn of the first non-zero entry in [start, end), or None."""
        cdef uint64_t out = 0
        cdef uint64_t s = _u64(start, "start", 0, VPN_LIMIT), e = _u64(end, "end", 0, VPN_LIMIT)
        return out if pt_next(&self.pt, s, e, &out) != NULL else None

    def free_range(self, start, end):
        cdef uint64_t s = _u64(start, "start", 0, VPN_LIMIT), e = _u64(end, "end", 0, VPN_LIMIT)
        return pt_free_range(&self.pt, s, e)

    @property
    def nr(self):
        """Live tables per level (PGD, PUD, PMD, PTE)."""
        return tuple(self.pt.nr[i] for i in range(4))

    @property
    def bytes(self):
        return pt_bytes(&self.pt)

    @property
    def vmpte_bytes(self):
        return pt_vmpte_bytes(&self.pt)

    @property
    def allocated(self):
        return self.allocated

    def verify(self):
        cdef list bad = []
        cdef int64_t per_level[4]
        cdef int i
        for i in range(4):
            per_level[i] = 0
        if self.pt.pgd != NULL:
            pt_verify_node(self.pt.pgd, 0, per_level, bad)
        for i in range(4):
            if per_level[i] != self.pt.nr[i]:
                bad.append(f"nr[{i}] = {self.pt.nr[i]} but {per_level[i]} tables at that level")
        return bad


# ---------------------------------------------------------------------- itree
ctypedef struct tnode_t:
    itnode_t it                   # first member: an itnode_t* is a tnode_t*
    int64_t id
    bint live


cdef int64_t itree_depth(itnode_t* n) noexcept nogil:
    cdef int64_t l, r
    if n == NULL:
        return 0
    l = itree_depth(n.left)
    r = itree_depth(n.right)
    return 1 + (l if l > r else r)


cdef class ITree:
    """One itree_t over a fixed pool of nodes named by id (0 .. capacity-1)."""
    cdef itree_t t
    cdef tnode_t* pool
    cdef int64_t cap

    def __cinit__(self, int64_t capacity=4096):
        if capacity < 1 or capacity > 1 << 24:
            raise errors.InvalidArgument("capacity must be in 1..2**24")
        self.pool = <tnode_t*>calloc(capacity, sizeof(tnode_t))
        if self.pool == NULL:
            raise MemoryError()
        self.cap = capacity
        itree_init(&self.t)

    def __dealloc__(self):
        free(self.pool)

    def insert(self, id, start, last):
        cdef int64_t i = _u64(id, "id", 0, self.cap - 1)
        cdef uint64_t s = _u64(start, "start"), l = _u64(last, "last")
        if l < s:
            raise errors.InvalidArgument("last < start")
        if self.pool[i].live:
            raise errors.InvalidArgument(f"node {i} is already in the tree")
        self.pool[i].it.start = s
        self.pool[i].it.last = l
        self.pool[i].id = i
        self.pool[i].live = True
        itree_insert(&self.t, &self.pool[i].it)

    def remove(self, id):
        cdef int64_t i = _u64(id, "id", 0, self.cap - 1)
        if not self.pool[i].live:
            raise errors.InvalidArgument(f"node {i} is not in the tree")
        itree_remove(&self.t, &self.pool[i].it)
        self.pool[i].live = False

    def update(self, id, start, last):
        """itree_update: the node's new range in place.  Its start must keep its place in
        start order: no other node may start between the old and the new start (inclusive)."""
        cdef int64_t i = _u64(id, "id", 0, self.cap - 1), j
        cdef uint64_t s = _u64(start, "start"), l = _u64(last, "last")
        cdef uint64_t lo, hi
        if l < s:
            raise errors.InvalidArgument("last < start")
        if not self.pool[i].live:
            raise errors.InvalidArgument(f"node {i} is not in the tree")
        lo = min(s, self.pool[i].it.start)
        hi = max(s, self.pool[i].it.start)
        for j in range(self.cap):
            if j != i and self.pool[j].live and lo <= self.pool[j].it.start <= hi:
                raise errors.InvalidArgument(f"node {j} starts between the old and the new start")
        itree_update(&self.t, &self.pool[i].it, s, l)

    def query(self, start, last):
        """[(start, last, id)] of the nodes overlapping [start, last], in tree order."""
        cdef uint64_t s = _u64(start, "start"), l = _u64(last, "last")
        cdef itnode_t* n
        out = []
        if l < s:
            return out
        n = itree_first(&self.t, s, l)
        while n != NULL:
            out.append((n.start, n.last, (<tnode_t*>n).id))
            if len(out) > self.t.count:
                raise errors.InvariantViolation("stabbing query returned more nodes than the tree holds")
            n = itree_next(n, s, l)
        return out

    @property
    def count(self):
        return self.t.count

    @property
    def depth(self):
        """Height of the tree (0 when empty): stays O(log count) if the treap balances."""
        return itree_depth(self.t.root)

    def verify(self):
        return [] if itree_verify(&self.t) == 0 else ["itree_verify failed"]


# --------------------------------------------------------------------- vmaset
# A stand-in for a design's VMA: the range is not at offset 0, as in the designs.
ctypedef struct tvma_t:
    uint64_t pad
    vma_span_t r
    int64_t id


cdef size_t TVMA_SPAN = <size_t>&(<tvma_t*>NULL).r


cdef class VmaSet:
    """One VMA set over stand-in VMAs named by id (0 .. capacity-1)."""
    cdef void** vmas
    cdef int64_t nr, cap, cache, pool_cap
    cdef tvma_t* pool
    cdef bytes live

    def __cinit__(self, int64_t capacity=256):
        if capacity < 1 or capacity > 1 << 20:
            raise errors.InvalidArgument("capacity must be in 1..2**20")
        self.pool = <tvma_t*>calloc(capacity, sizeof(tvma_t))
        if self.pool == NULL:
            raise MemoryError()
        self.pool_cap = capacity

    def __dealloc__(self):
        free(self.pool)
        free(self.vmas)

    def _in_set(self, int64_t i):
        cdef int64_t k
        for k in range(self.nr):
            if self.vmas[k] == <void*>&self.pool[i]:
                return True
        return False

    def insert(self, id, start, end):
        """Insert VMA `id` over [start, end); refused when it overlaps one in the set."""
        cdef int64_t i = _u64(id, "id", 0, self.pool_cap - 1)
        cdef uint64_t s = _u64(start, "start", 0, VPN_LIMIT - 1), e = _u64(end, "end", 1, VPN_LIMIT)
        if e <= s:
            raise errors.InvalidArgument("end <= start")
        if self._in_set(i):
            raise errors.InvalidArgument(f"VMA {i} is already in the set")
        if vmaset_any_mapped(self.vmas, self.nr, TVMA_SPAN, s, e):
            raise errors.InvalidArgument("range overlaps a VMA of the set")
        if vmaset_reserve(&self.vmas, &self.cap, self.nr + 1) != 0:
            raise MemoryError()
        self.pool[i].r.vm_start = s
        self.pool[i].r.vm_end = e
        self.pool[i].id = i
        vmaset_insert(self.vmas, &self.nr, TVMA_SPAN, &self.pool[i])

    def remove(self, index, count=1):
        """Take the `count` VMAs at positions [index, index + count) out of the set."""
        cdef int64_t i = _u64(index, "index", 0, self.nr), n = _u64(count, "count", 0, self.nr)
        if i + n > self.nr:
            raise errors.InvalidArgument("positions beyond the set")
        vmaset_remove(self.vmas, &self.nr, i, n)

    def find(self, vpn):
        """(start, end, id) of the VMA containing vpn, or None."""
        cdef uint64_t v = _u64(vpn, "vpn")
        cdef int64_t i = vmaset_find(self.vmas, self.nr, TVMA_SPAN, &self.cache, v)
        cdef tvma_t* t
        if i < 0:
            return None
        t = <tvma_t*>self.vmas[i]
        return (t.r.vm_start, t.r.vm_end, t.id)

    def lower_bound(self, vpn):
        return vmaset_lower_bound(self.vmas, self.nr, TVMA_SPAN, _u64(vpn, "vpn"))

    def fully_mapped(self, start, end):
        return vmaset_fully_mapped(self.vmas, self.nr, TVMA_SPAN, _u64(start, "start"), _u64(end, "end"))

    def any_mapped(self, start, end):
        return vmaset_any_mapped(self.vmas, self.nr, TVMA_SPAN, _u64(start, "start"), _u64(end, "end"))

    def items(self):
        """[(start, end, id)] in set order."""
        cdef int64_t k
        cdef tvma_t* t
        out = []
        for k in range(self.nr):
            t = <tvma_t*>self.vmas[k]
            out.append((t.r.vm_start, t.r.vm_end, t.id))
        return out

    @property
    def count(self):
        return self.nr

    def verify(self):
        """Ordered, non-overlapping, non-empty ranges; nr within the allocated array."""
        errs = []
        items = self.items()
        if self.nr > self.cap:
            errs.append("more VMAs than array slots")
        for k, (s, e, _) in enumerate(items):
            if e <= s:
                errs.append(f"empty VMA at {k}")
            if k and items[k - 1][1] > s:
                errs.append(f"VMAs {k - 1} and {k} overlap or are out of order")
        return errs


# --------------------------------------------------------------------- frames
cdef class Frames:
    """One frames_t; allocations are tracked so a bad free is refused, not done."""
    cdef frames_t fr
    cdef set live

    def __cinit__(self, ram_pages, ndevices=0, device_pages=1):
        self.fr.f = NULL
        self.fr.freelist = NULL
        ram = _u64(ram_pages, "ram_pages", 1, 1 << 26)
        nd = _u64(ndevices, "ndevices", 0, MAX_NODES - 1)
        dp = _u64(device_pages, "device_pages", 1, 1 << 24)
        frames_init(&self.fr, ram, nd, dp)
        self.live = set()

    def __dealloc__(self):
        frames_destroy(&self.fr)

    def alloc(self, node=0):
        cdef int n = _u64(node, "node", 0, self.fr.nr_nodes - 1)
        cdef pfn_t p = frame_alloc(&self.fr, n)
        if p == NO_PFN:
            return None
        self.live.add(p)
        return p

    def free(self, pfn):
        p = _u64(pfn, "pfn")
        if p not in self.live:
            raise errors.InvalidArgument(f"pfn {p} is not allocated")
        self.live.discard(p)
        frame_free(&self.fr, p)

    def node_of(self, pfn):
        p = _u64(pfn, "pfn")
        if p not in self.live:
            raise errors.InvalidArgument(f"pfn {p} is not allocated")
        return frame_node(&self.fr, p)

    def set_value(self, pfn, value):
        p = _u64(pfn, "pfn")
        if p not in self.live:
            raise errors.InvalidArgument(f"pfn {p} is not allocated")
        self.fr.f[<pfn_t>p].value = _u64(value, "value")

    def value(self, pfn):
        p = _u64(pfn, "pfn")
        if p not in self.live:
            raise errors.InvalidArgument(f"pfn {p} is not allocated")
        return self.fr.f[<pfn_t>p].value

    def refcount(self, pfn):
        p = _u64(pfn, "pfn")
        if p not in self.live:
            raise errors.InvalidArgument(f"pfn {p} is not allocated")
        return self.fr.f[<pfn_t>p].refcount

    def free_count(self, node=0):
        return frames_free_count(&self.fr, _u64(node, "node", 0, self.fr.nr_nodes - 1))

    def used(self, node=0):
        return self.fr.node_used[<int>_u64(node, "node", 0, self.fr.nr_nodes - 1)]

    def node_range(self, node):
        """[first pfn, last pfn + 1) of a node."""
        n = _u64(node, "node", 0, self.fr.nr_nodes - 1)
        return (self.fr.node_base[n], self.fr.node_base[n] + self.fr.node_size[n])

    @property
    def nr_nodes(self):
        return self.fr.nr_nodes


# -------------------------------------------------------------------- handles
cdef class Handles:
    """One handles_t numbering Python ints (kept alive here, stored as even
    addresses); a number not in use is refused, not given back."""
    cdef handles_t h
    cdef dict objs                 # number -> the int it names

    def __cinit__(self, max_numbers):
        handles_init(&self.h, _u64(max_numbers, "max_numbers", 0, 1 << 40))
        self.objs = {}

    def __dealloc__(self):
        handles_destroy(&self.h)

    def take(self, value):
        """A number naming `value` (an int), or None when none is left."""
        cdef uint64_t v = _u64(value, "value", 0, (1 << 62) - 1)
        cdef int64_t n = handles_take(&self.h, <void*><size_t>(v << 1))
        if n < 0:
            return None
        self.objs[n] = v
        return n

    def put(self, n):
        k = _u64(n, "number")
        if k not in self.objs:
            raise errors.InvalidArgument(f"number {k} is not in use")
        del self.objs[k]
        handles_put(&self.h, k)

    def get(self, n):
        k = _u64(n, "number")
        if k not in self.objs:
            raise errors.InvalidArgument(f"number {k} is not in use")
        return <uint64_t><size_t>handles_get(&self.h, k) >> 1

    def verify(self):
        """[] or the violations: the numbers in use are exactly those handed out,
        the free chain holds every other slot once, count is right."""
        cdef int64_t n, seen = 0
        out = []
        if self.h.count != len(self.objs):
            out.append(f"count {self.h.count} != {len(self.objs)} numbers in use")
        if self.h.len > self.h.max or (self.h.len and self.h.len < len(self.objs)):
            out.append(f"len {self.h.len} outside [numbers in use, max {self.h.max}]")
        for n in range(self.h.len):
            if handles_live(&self.h, n) != (n in self.objs):
                out.append(f"number {n}: live {handles_live(&self.h, n)}, in use {n in self.objs}")
        free = set()
        n = self.h.free
        while n >= 0 and seen <= self.h.len:
            if handles_live(&self.h, n) or n in free:
                out.append(f"free chain reaches {n}, in use or twice")
                break
            free.add(n)
            seen += 1
            n = <int64_t>(<size_t>self.h.slot[n] >> 1) - 1
        if len(free) + len(self.objs) != self.h.len:
            out.append(f"free chain {len(free)} + in use {len(self.objs)} != len {self.h.len}")
        return out

    @property
    def size(self):
        """Slots allocated."""
        return self.h.len


# ----------------------------------------------------------------- pv chunks
cdef class PvChunks:
    """pmap_pvchunk's pv side (FreeBSD's pv entries and pv_chunks) over `npages`
    frames of its own and `npmaps` pmaps (0, 1, …): mappings are entered and
    removed through the implementation's pv operations (ctx.pv), as pmap_enter
    and pmap_remove do.  max_chunks lowers the limit on pv_chunks alive at once
    (PVC_NUM_MAX), so a test reaches that limit's failure with a few chunks."""
    cdef frames_t fr
    cdef pmap_ctx_t ctx
    cdef uint64_t ctr[NR_COUNTERS]
    cdef kmem_cache_t kc[5]          # pgd, pud, pmd, pte tables, pv_chunk
    cdef pmap_t* pms
    cdef int64_t npmaps
    cdef dict maps                   # (pmap, vpn) -> pfn

    def __cinit__(self, npages, npmaps, max_chunks=None):
        cdef int64_t i
        self.fr.f = NULL
        self.pms = NULL
        self.npmaps = 0
        frames_init(&self.fr, _u64(npages, "npages", 1, 1 << 20), 0, 1)
        memset(&self.ctx, 0, sizeof(pmap_ctx_t))
        memset(self.ctr, 0, sizeof(self.ctr))
        memset(self.kc, 0, sizeof(self.kc))
        self.ctx.fr = &self.fr
        self.ctx.ctr = self.ctr
        self.ctx.kc = self.kc
        self.ctx.kc_pgd, self.ctx.kc_pv, self.ctx.kc_pmap = 0, 4, -1
        pmap_bootstrap(&self.ctx, npages)
        if max_chunks is not None:       # no chunk numbered yet: the table is empty
            self.ctx.pvc_tab.max = _u64(max_chunks, "max_chunks", 0, self.ctx.pvc_tab.max)
        n = _u64(npmaps, "npmaps", 1, 64)
        self.pms = <pmap_t*>calloc(n, sizeof(pmap_t))
        if self.pms == NULL:
            raise MemoryError
        for i in range(n):
            if pmap_pinit(&self.ctx, &self.pms[i], i) != 0:
                raise MemoryError
            self.npmaps += 1
        self.maps = {}

    def __dealloc__(self):
        cdef int64_t i
        if self.pms != NULL:
            for (pm, vpn), pfn in (self.maps or {}).items():
                self.ctx.pv.pv_remove(&self.ctx, &self.pms[<int64_t>pm].hdr, <pfn_t>pfn, <int64_t>vpn)
            for i in range(self.npmaps):
                pmap_release(&self.ctx, &self.pms[i])
            free(self.pms)
            pmap_ctx_destroy(&self.ctx)
        if self.fr.f != NULL:
            frames_destroy(&self.fr)

    def _pm(self, pm):
        return _u64(pm, "pmap", 0, self.npmaps - 1)

    def enter(self, pm, vpn, pfn):
        """Record the mapping <pm, vpn> of page pfn: True, or False when no pv
        entry could be had (nothing recorded)."""
        k = (self._pm(pm), _u64(vpn, "vpn", 0, VPN_LIMIT - 1))
        p = _u64(pfn, "pfn", 0, self.fr.node_size[0] - 1)
        if k in self.maps:
            raise errors.InvalidArgument(f"{k} is mapped already")
        if self.ctx.pv.pv_enter(&self.ctx, &self.pms[<int64_t>k[0]].hdr, <pfn_t>p, <int64_t>k[1]) != 0:
            return False
        self.maps[k] = p
        return True

    def remove(self, pm, vpn):
        k = (self._pm(pm), _u64(vpn, "vpn", 0, VPN_LIMIT - 1))
        if k not in self.maps:
            raise errors.InvalidArgument(f"{k} is not mapped")
        p = self.maps.pop(k)
        self.ctx.pv.pv_remove(&self.ctx, &self.pms[<int64_t>k[0]].hdr, <pfn_t>p, <int64_t>k[1])

    def mappers(self, pfn):
        """[(pmap, vpn), …] in the order of the page's pv list."""
        cdef pv_entry_t pv = pv_list_first(pv_list(&self.ctx, <pfn_t>_u64(pfn, "pfn", 0,
                                                                        self.fr.node_size[0] - 1)))
        out = []
        while pv != 0 and len(out) <= len(self.maps):
            out.append((<int64_t>(pv_pmap(&self.ctx, pv) - self.pms), pv_va(&self.ctx, pv)))
            pv = pv_next(&self.ctx, pv)
        return out

    @property
    def chunks(self):
        """pv_chunks alive (kc_pv's active objects)."""
        return self.kc[4].active

    @property
    def pv_entries(self):
        """C_PV_ENTRIES: pv entries taken so far."""
        return self.ctr[C_PV_ENTRIES]

    def verify(self):
        """[] or the violations: every pv list names entries in use and holds exactly
        the page's mappings; entries in use == mappings; chunk numbers == chunks."""
        cdef int64_t i, used = 0
        cdef pv_entry_t pv
        out = []
        for i in range(self.npmaps):
            used += pmap_pv_count(&self.pms[i])
        if used != len(self.maps):
            out.append(f"{used} pv entries in use, {len(self.maps)} mappings")
        if self.ctx.pvc_tab.count != self.kc[4].active:
            out.append(f"{self.ctx.pvc_tab.count} chunk numbers, {self.kc[4].active} chunks")
        want = {}
        for (pm, vpn), p in self.maps.items():
            want.setdefault(p, set()).add((pm, vpn))
        for p in range(self.fr.node_size[0]):
            pv = pv_list_first(pv_list(&self.ctx, <pfn_t>p))
            steps = 0
            while pv != 0 and pv_handle_valid(&self.ctx, pv) and steps <= used:
                pv = pv_next(&self.ctx, pv)
                steps += 1
            if pv != 0:
                out.append(f"pfn {p}: its pv list names entry {pv}, not in use, or does not end")
            elif sorted(self.mappers(p)) != sorted(want.get(p, ())):
                out.append(f"pfn {p}: pv list {self.mappers(p)} != mappings {sorted(want.get(p, ()))}")
        return out


# ------------------------------------------------------------------ pagecache
cdef class PageCache:
    """One address_space_t over its own host frames: add/lookup/remove/truncate."""
    cdef frames_t fr
    cdef address_space_t as_

    def __cinit__(self, ram_pages=4096):
        self.fr.f = NULL
        self.fr.freelist = NULL
        frames_init(&self.fr, _u64(ram_pages, "ram_pages", 1, 1 << 26), 0, 1)
        mapping_init(&self.as_)

    def __dealloc__(self):
        xa_destroy(&self.as_.i_pages)
        frames_destroy(&self.fr)

    def add(self, index, value=0):
        """Cache a new frame holding `value` at `index` (must be a hole); returns its pfn."""
        cdef uint64_t i = _u64(index, "index", 0, (1 << 64) - 2)
        cdef pfn_t p
        if mapping_lookup(&self.as_, i) != NO_PFN:
            raise errors.InvalidArgument(f"index {i} is already cached")
        p = frame_alloc(&self.fr, 0)
        if p == NO_PFN:
            raise errors.OutOfMemory("no frame left")
        self.fr.f[p].value = _u64(value, "value")
        if mapping_add(&self.as_, i, p) != 0:
            frame_free(&self.fr, p)
            raise MemoryError("mapping_add")
        return p

    def lookup(self, index):
        """(pfn, value) cached at index, or None."""
        cdef pfn_t p = mapping_lookup(&self.as_, _u64(index, "index"))
        return None if p == NO_PFN else (p, self.fr.f[p].value)

    def remove(self, index):
        """Uncache `index` (the cache drops its reference); returns the value it held, or None."""
        cdef pfn_t p = mapping_remove(&self.as_, _u64(index, "index"))
        if p == NO_PFN:
            return None
        v = self.fr.f[p].value
        self.fr.f[p].refcount -= 1
        if self.fr.f[p].refcount == 0:
            frame_free(&self.fr, p)
        return v

    def get(self, index):
        """Take an extra reference (a mapper) on the frame at index."""
        cdef pfn_t p = mapping_lookup(&self.as_, _u64(index, "index"))
        if p == NO_PFN:
            raise errors.InvalidArgument("hole")
        self.fr.f[p].refcount += 1

    def put_frame(self, pfn):
        """Drop a mapper's reference on a frame (frees it at zero)."""
        p = _u64(pfn, "pfn", 0, self.fr.node_size[0] - 1)
        if self.fr.f[<pfn_t>p].refcount <= 0 or p >= self.fr.node_bump[0]:
            raise errors.InvalidArgument("frame not referenced")
        self.fr.f[<pfn_t>p].refcount -= 1
        if self.fr.f[<pfn_t>p].refcount == 0:
            frame_free(&self.fr, p)

    def truncate(self, start, end):
        return mapping_truncate(&self.as_, &self.fr, _u64(start, "start"), _u64(end, "end"))

    @property
    def nrpages(self):
        return self.as_.nrpages

    @property
    def nr_nodes(self):
        return self.as_.i_pages.nr_nodes

    @property
    def frames_used(self):
        return self.fr.node_used[0]


# ------------------------------------------------------------ microbenchmarks
# Index streams: "seq" walks 0, 1, 2 …; "random" draws from [0, span) with a
# fixed xorshift64 seed, so every run times the same work.

cdef inline uint64_t xorshift(uint64_t* s) noexcept nogil:
    cdef uint64_t x = s[0]
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    s[0] = x
    return x


cdef uint64_t* index_stream(int64_t n, str pattern, uint64_t span) except NULL:
    cdef uint64_t* idx = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))
    cdef uint64_t s = 0x9E3779B97F4A7C15
    cdef int64_t i
    if idx == NULL:
        raise MemoryError()
    if pattern == "seq":
        for i in range(n):
            idx[i] = <uint64_t>i % span
    elif pattern == "random":
        for i in range(n):
            idx[i] = xorshift(&s) % span
    else:
        free(idx)
        raise errors.InvalidArgument(f"pattern must be 'seq' or 'random', got {pattern!r}")
    return idx


def _count(n):
    return _u64(n, "n", 1, 1 << 26)


def bench_xarray_store(n, pattern="seq", span=1 << 20):
    """ns per xa_store of n entries into an empty xarray (node allocation included)."""
    cdef int64_t cnt = _count(n), i, t0, t1
    cdef uint64_t* idx = index_stream(cnt, pattern, _u64(span, "span", 1))
    cdef xarray_t xa
    xa_init(&xa)
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            xa_store(&xa, idx[i], <uint64_t>i + 1)
        t1 = now_ns()
    xa_destroy(&xa)
    free(idx)
    return (t1 - t0) / <double>cnt


def bench_xarray_load(n, pattern="random", span=1 << 20):
    """ns per xa_load on an xarray holding every index of [0, min(span, n))."""
    cdef int64_t cnt = _count(n), i, t0, t1
    cdef uint64_t sp = _u64(span, "span", 1)
    cdef uint64_t* idx = index_stream(cnt, pattern, sp)
    cdef uint64_t acc = 0
    cdef xarray_t xa
    xa_init(&xa)
    for i in range(min(<int64_t>sp, cnt)):
        xa_store(&xa, i, <uint64_t>i + 1)
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            acc += xa_load(&xa, idx[i])
        t1 = now_ns()
    xa_destroy(&xa)
    free(idx)
    return (t1 - t0) / <double>cnt


def bench_xarray_erase(n, pattern="seq", span=1 << 20):
    """ns per xa_erase, emptying an xarray filled with the same n indices (node frees included)."""
    cdef int64_t cnt = _count(n), i, t0, t1
    cdef uint64_t* idx = index_stream(cnt, pattern, _u64(span, "span", 1))
    cdef xarray_t xa
    xa_init(&xa)
    for i in range(cnt):
        xa_store(&xa, idx[i], <uint64_t>i + 1)
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            xa_erase(&xa, idx[i])
        t1 = now_ns()
    xa_destroy(&xa)
    free(idx)
    return (t1 - t0) / <double>cnt


def bench_pt_set(n, pattern="seq", span=1 << 24):
    """ns per pt_leaf(alloc) + pt_set of a PTE into an empty page table."""
    cdef int64_t cnt = _count(n), i, t0, t1, nalloc = 0
    cdef uint64_t* idx = index_stream(cnt, pattern, _u64(span, "span", 1, VPN_LIMIT))
    cdef pgtable_t pt
    cdef pt_node_t* t
    if pt_init(&pt) != 0:
        free(idx)
        raise MemoryError()
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            t = pt_leaf(&pt, idx[i], True, &nalloc)
            if t != NULL:
                pt_set(t, idx[i], (<uint64_t>i << 12) | 1)
        t1 = now_ns()
    pt_destroy(&pt)
    free(idx)
    return (t1 - t0) / <double>cnt


def bench_pt_get(n, pattern="random", span=1 << 20):
    """ns per pt_get on a page table with every vpn of [0, min(span, n)) present."""
    cdef int64_t cnt = _count(n), i, t0, t1, nalloc = 0
    cdef uint64_t sp = _u64(span, "span", 1, VPN_LIMIT)
    cdef uint64_t* idx = index_stream(cnt, pattern, sp)
    cdef uint64_t acc = 0
    cdef pgtable_t pt
    cdef pt_node_t* t
    if pt_init(&pt) != 0:
        free(idx)
        raise MemoryError()
    for i in range(min(<int64_t>sp, cnt)):
        t = pt_leaf(&pt, i, True, &nalloc)
        pt_set(t, i, (<uint64_t>i << 12) | 1)
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            acc += pt_get(&pt, idx[i])
        t1 = now_ns()
    pt_destroy(&pt)
    free(idx)
    return (t1 - t0) / <double>cnt


def bench_pt_next(n, density=64):
    """ns per present PTE found by a pt_next scan over a table with one PTE every `density` pages."""
    cdef int64_t cnt = _count(n), i, t0, t1, nalloc = 0, found = 0
    cdef uint64_t d = _u64(density, "density", 1, 1 << 20)
    cdef uint64_t vpn = 0, end = <uint64_t>cnt * d
    cdef pgtable_t pt
    cdef pt_node_t* t
    if end > VPN_LIMIT:
        raise errors.InvalidArgument("n * density exceeds the address space")
    if pt_init(&pt) != 0:
        raise MemoryError()
    for i in range(cnt):
        t = pt_leaf(&pt, i * d, True, &nalloc)
        pt_set(t, i * d, 1)
    with nogil:
        t0 = now_ns()
        t = pt_next(&pt, 0, end, &vpn)
        while t != NULL:
            found += 1
            t = pt_next(&pt, vpn + 1, end, &vpn)
        t1 = now_ns()
    pt_destroy(&pt)
    return (t1 - t0) / <double>max(found, 1)


def bench_itree_insert_remove(n, span=1 << 20, width=16):
    """ns per itree_insert + itree_remove pair, n intervals at random starts."""
    cdef int64_t cnt = _count(n), i, t0, t1
    cdef uint64_t w = _u64(width, "width", 1)
    cdef uint64_t* idx = index_stream(cnt, "random", _u64(span, "span", 1))
    cdef itnode_t* nodes = <itnode_t*>calloc(cnt, sizeof(itnode_t))
    cdef itree_t t
    if nodes == NULL:
        free(idx)
        raise MemoryError()
    itree_init(&t)
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            nodes[i].start = idx[i]
            nodes[i].last = idx[i] + w - 1
            itree_insert(&t, &nodes[i])
        for i in range(cnt):
            itree_remove(&t, &nodes[i])
        t1 = now_ns()
    free(nodes)
    free(idx)
    return (t1 - t0) / <double>cnt


def bench_itree_query(n, size=4096, span=1 << 20, width=16):
    """ns per stabbing query (first + every next) of a random point in a tree of `size` intervals."""
    cdef int64_t cnt = _count(n), sz = _u64(size, "size", 1, 1 << 24), i, t0, t1, hits = 0
    cdef uint64_t w = _u64(width, "width", 1)
    cdef uint64_t sp = _u64(span, "span", 1)
    cdef uint64_t* starts = index_stream(sz, "random", sp)
    cdef uint64_t* pts = index_stream(cnt, "seq", sp)
    cdef itnode_t* nodes = <itnode_t*>calloc(sz, sizeof(itnode_t))
    cdef itnode_t* x
    cdef itree_t t
    if nodes == NULL:
        free(starts)
        free(pts)
        raise MemoryError()
    itree_init(&t)
    for i in range(sz):
        nodes[i].start = starts[i]
        nodes[i].last = starts[i] + w - 1
        itree_insert(&t, &nodes[i])
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            x = itree_first(&t, pts[(i * 7919) % cnt], pts[(i * 7919) % cnt])
            while x != NULL:
                hits += 1
                x = itree_next(x, pts[(i * 7919) % cnt], pts[(i * 7919) % cnt])
        t1 = now_ns()
    free(nodes)
    free(starts)
    free(pts)
    return (t1 - t0) / <double>cnt


def bench_first_touch_floor(n, ram_pages=None):
    """ns per first-touch write on the bare minimum: a 4-level radix page table
    and the frame block, nothing else.

    For each of n consecutive pages: walk (allocating tables), take a fresh
    frame, store the written value in it, map it with a present, writable PTE.
    No VMA, no reverse map, no accounting: the floor every design's first-touch
    loop is compared with (``simspeed.Replay.track_loop_over_floor``).  Fresh
    structures each call, so the host backs their memory inside the loop just
    as it does for a design's fresh machine; `ram_pages` (default 2n + 64K, as
    simspeed's machines) sizes the frame block.
    """
    cdef int64_t cnt = _count(n), i, t0, t1, nalloc = 0
    cdef int64_t ram = cnt * 2 + (1 << 16) if ram_pages is None else _u64(ram_pages, "ram_pages", 1, 1 << 32)
    cdef frames_t fr
    cdef pgtable_t pt
    cdef pt_node_t* t
    cdef pfn_t pfn
    cdef bint failed = False
    if ram < cnt:
        raise errors.InvalidArgument(f"ram_pages ({ram}) must hold n ({cnt}) frames")
    fr.f = NULL
    fr.freelist = NULL
    frames_init(&fr, ram, 0, 1)
    if pt_init(&pt) != 0:
        frames_destroy(&fr)
        raise MemoryError()
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            t = pt_leaf(&pt, <uint64_t>i, True, &nalloc)
            if t == NULL:
                failed = True
                break
            pfn = frame_alloc(&fr, 0)
            fr.f[pfn].value = <uint64_t>i + 1
            fr.f[pfn].mapcount = 1
            pt_set(t, <uint64_t>i, mk_pte(pfn, PTE_PRESENT | PTE_WRITE))
        t1 = now_ns()
    pt_destroy(&pt)
    frames_destroy(&fr)
    if failed:
        raise MemoryError()
    return (t1 - t0) / <double>cnt


def bench_frame_alloc_free(n, batch=512):
    """ns per frame_alloc + frame_free (allocate `batch` frames, free them, repeat)."""
    cdef int64_t cnt = _count(n), b = _u64(batch, "batch", 1, 1 << 20), i, j, t0, t1, done = 0
    cdef frames_t fr
    cdef pfn_t* held = <pfn_t*>malloc(b * sizeof(pfn_t))
    if held == NULL:
        raise MemoryError()
    fr.f = NULL
    fr.freelist = NULL
    frames_init(&fr, b, 0, 1)
    with nogil:
        t0 = now_ns()
        while done < cnt:
            for j in range(b):
                held[j] = frame_alloc(&fr, 0)
            for j in range(b):
                frame_free(&fr, held[j])
            done += b
        t1 = now_ns()
    frames_destroy(&fr)
    free(held)
    return (t1 - t0) / <double>done


def bench_pagecache_lookup(n, nrpages=1 << 16):
    """ns per mapping_lookup at random offsets of a fully cached file of `nrpages` pages."""
    cdef int64_t cnt = _count(n), npg = _u64(nrpages, "nrpages", 1, 1 << 24), i, t0, t1
    cdef uint64_t* idx = index_stream(cnt, "random", npg)
    cdef uint64_t acc = 0
    cdef frames_t fr
    cdef address_space_t as_
    fr.f = NULL
    fr.freelist = NULL
    frames_init(&fr, npg, 0, 1)
    mapping_init(&as_)
    for i in range(npg):
        mapping_add(&as_, i, frame_alloc(&fr, 0))
    with nogil:
        t0 = now_ns()
        for i in range(cnt):
            acc += mapping_lookup(&as_, idx[i])
        t1 = now_ns()
    mapping_truncate(&as_, &fr, 0, npg)
    frames_destroy(&fr)
    free(idx)
    return (t1 - t0) / <double>cnt


BENCHMARKS = {
    "xarray_store": bench_xarray_store,
    "xarray_load": bench_xarray_load,
    "xarray_erase": bench_xarray_erase,
    "pt_set": bench_pt_set,
    "pt_get": bench_pt_get,
    "pt_next": bench_pt_next,
    "itree_insert_remove": bench_itree_insert_remove,
    "itree_query": bench_itree_query,
    "frame_alloc_free": bench_frame_alloc_free,
    "pagecache_lookup": bench_pagecache_lookup,
    "first_touch_floor": bench_first_touch_floor,
}
