# amap — anonymous maps and anons (uvm_amap.c, uvm_anon.c).  See amap.pyx.
from libc.stdint cimport int64_t, int32_t
from mmbench.blocks.frames cimport pfn_t
from mmbench_uvm.uvm cimport uvm_ctx_t, vm_amap_t, vm_anon_t, vm_aref_t, vm_map_entry_t

cdef vm_anon_t uvm_analloc(uvm_ctx_t* u, pfn_t pg) noexcept nogil       # the anon of pg, an_ref 1
cdef void uvm_anon_unref(uvm_ctx_t* u, vm_anon_t anon) noexcept nogil    # frees at 0
cdef vm_amap_t* amap_alloc(uvm_ctx_t* u, int64_t nslot) noexcept nogil  # am_ref 1; NULL: no memory
cdef vm_amap_t* amap_copy_anons(uvm_ctx_t* u, vm_amap_t* src, int64_t pageoff,
                                int64_t nslot) noexcept nogil
cdef inline vm_anon_t amap_lookup(vm_aref_t* aref, int64_t offset) noexcept nogil:
    """The anon in the aref's slot `offset` (NO_ANON: empty)."""
    return aref.ar_amap.am_anon[aref.ar_pageoff + offset]

cdef inline void amap_add(vm_aref_t* aref, int64_t offset, vm_anon_t anon, bint replace) noexcept nogil:
    """Put anon into the slot; replace => the slot held an anon (the caller
    already dropped that anon's reference)."""
    cdef vm_amap_t* amap = aref.ar_amap
    cdef int64_t slot = aref.ar_pageoff + offset
    if not replace:
        amap.am_bckptr[slot] = amap.am_nused
        amap.am_slots[amap.am_nused] = <int32_t>slot
        amap.am_nused += 1
    amap.am_anon[slot] = anon

cdef void amap_unadd(vm_aref_t* aref, int64_t offset) noexcept nogil
cdef int amap_ref(uvm_ctx_t* u, vm_amap_t* amap, int64_t offset, int64_t length,
                  bint shared) noexcept nogil
cdef void amap_unref(uvm_ctx_t* u, vm_amap_t* amap, int64_t offset, int64_t length) noexcept nogil
cdef int amap_splitref(uvm_ctx_t* u, vm_aref_t* origref, vm_aref_t* splitref,
                       int64_t offset) noexcept nogil
cdef void amap_pp_adjref(uvm_ctx_t* u, vm_amap_t* amap, int64_t curslot, int64_t slotlen,
                         int adjval) noexcept nogil
# Let e's amap (am_ref 1) cover slotadd more pages after (forwards) or before
# e: 0, E2BIG (would reach UVM_AMAP_LARGE slots), -1 out of memory.
cdef int amap_extend(uvm_ctx_t* u, vm_map_entry_t* e, int64_t slotadd, bint forwards) noexcept nogil
