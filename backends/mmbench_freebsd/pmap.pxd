# pmap — the machine-dependent layer: 4-level page tables and pv entries.
#
# Each present PTE has exactly one pv_entry on its page's pv list; the entry
# records the virtual page and (through the 4 KiB-aligned pv_chunk holding it)
# the pmap.  That list is the reverse map: "who maps this page" is a walk of
# pv entries (pmap_remove_all, rmap walks for migration).  pv entries are
# carved out of per-pmap pv_chunks of 168 entries (chunks with a free entry and
# full ones on separate lists, so both allocation and free are O(1)); a chunk
# is freed when its last entry is.  pmap_copy (fork) and pmap_protect are the
# fork-time costs that scale with resident memory.
#
# Superpages (vm.pmap.pg_ps_enabled).  When pmap_enter leaves a PTE page with
# all 512 entries valid and the page it entered belongs to a fully populated
# reservation (vm_reserv_level_iffullpop), pmap_promote_pde checks that entry
# i maps the reservation's page i with one protection for all; then the 512
# pv entries give way to one on the reservation's pvh list (pmap_pv_promote_pde)
# and the range is one 2 MiB mapping.  The PTE page is kept for demotion
# (pmap_insert_pt_page): its entries stay in the table, marked PTE_PROMOTED,
# and stand for the PDE.  A 2 MiB mapping is demoted (pmap_demote_pde: 512 pv
# entries again) by pmap_enter inside it (COW after fork, a write to a
# read-only superpage), by a pmap_remove or pmap_protect that covers only part
# of it, by pmap_remove_all of one of its pages and by pmap_move; removing or
# write-protecting the whole of it works on the one PDE (pmap_remove_pde,
# pmap_protect_pde), and pmap_copy at fork copies it as one PDE with one pv
# entry for the child when the whole 2 MiB is copied into an empty range.
# Counted as PTE writes: one per PDE written.
from libc.stdint cimport uint64_t, int64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench_freebsd.vm cimport vm_ctx_t, pmap_t, pv_entry_t, vm_reserv_t

cdef int pmap_pinit(vm_ctx_t* vm, pmap_t* pm, int64_t pid) noexcept nogil      # 0 / -1
cdef void pmap_release(vm_ctx_t* vm, pmap_t* pm) noexcept nogil                # no mappings left
# Map `pfn` at `vpn` (replacing whatever was there): 0, or -1 out of memory.
# `leaf` is the PTE table holding vpn when the caller already has it, else NULL.
cdef int pmap_enter(vm_ctx_t* vm, pmap_t* pm, int64_t vpn, pfn_t pfn, bint writable,
                    pt_node_t* leaf) noexcept nogil
# Remove every mapping in [start, end); returns how many.
cdef int64_t pmap_remove(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end) noexcept nogil
# Clear the write bit in [start, end); returns how many PTEs changed.
cdef int64_t pmap_protect(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end) noexcept nogil
# Unmap a page everywhere through its pv list; returns mappings removed.
cdef int64_t pmap_remove_all(vm_ctx_t* vm, pfn_t pfn) noexcept nogil
# pmap_copy at fork: enter every mapping of src in [start, end) into dst (same
# page, same protection) where dst has none; returns how many.
cdef int64_t pmap_copy(vm_ctx_t* vm, pmap_t* dst, pmap_t* src, int64_t start, int64_t end) noexcept nogil
# Move the mappings of [start, end) by `delta` pages (mremap): returns how many.
cdef int pmap_reserve_move(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end, int64_t delta,
                           int64_t floor, int64_t ceiling) noexcept nogil   # -1: out of memory
cdef int64_t pmap_move(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end, int64_t delta) noexcept nogil
# free_pgtables over the unmapped hole [floor, ceiling).
cdef void pmap_free_tables(vm_ctx_t* vm, pmap_t* pm, int64_t floor, int64_t ceiling) noexcept nogil
cdef uint64_t pmap_pte(pmap_t* pm, int64_t vpn) noexcept nogil
cdef pmap_t* pv_pmap(pv_entry_t* pv) noexcept nogil
cdef int64_t pmap_pv_count(pmap_t* pm) noexcept nogil                       # pv entries in use
# Superpages (amd64 pmap_promote_pde / pmap_demote_pde).  Demote the 2 MiB
# mapping holding vpn (leaf t is its kept PTE page); demote every 2 MiB mapping
# of a reservation; demote every 2 MiB mapping in [start, end).
cdef void pmap_demote_pde(vm_ctx_t* vm, pmap_t* pm, pt_node_t* t, int64_t vpn) noexcept nogil
cdef void pmap_demote_reserv(vm_ctx_t* vm, vm_reserv_t* rv) noexcept nogil
cdef void pmap_demote_range(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end) noexcept nogil
cdef int64_t pmap_superpages(pmap_t* pm) noexcept nogil             # 2 MiB mappings
