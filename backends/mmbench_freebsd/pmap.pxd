# pmap — FreeBSD amd64's pmap: the pmap block (mmbench/blocks/pmap: 4-level
# page tables) with its pv_chunk implementation (mmbench/blocks/pmap_pvchunk:
# every mapping a pv_entry in per-pmap 4 KiB chunks of 168), and what is
# FreeBSD's own here: superpages, and pmap_copy at fork.
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
# Counted as PTE writes: one per PDE written.  The block's page-table side
# calls the demote / remove / promote steps through ctx.pde (pmap_pde_init).
#
# Everything else is the block's, called on (&vm.md, &map.pmap.hdr):
# pmap_enter, pmap_remove, pmap_protect, pmap_reserve_move, pmap_move,
# pmap_free_tables, pmap_pte, pmap_superpages; pmap_pinit / pmap_release /
# pmap_pv_count / pv_pmap are pmap_pvchunk's.
from libc.stdint cimport int64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pmap_pvchunk cimport pmap_t
from mmbench_freebsd.vm cimport vm_ctx_t, vm_reserv_t

cdef void pmap_pde_init(vm_ctx_t* vm) noexcept nogil      # superpages on (vm.pg_ps_enabled)
# Unmap a page everywhere (its reservation's 2 MiB mappings demoted first);
# returns the 4 KiB mappings removed.
cdef int64_t pmap_remove_all(vm_ctx_t* vm, pfn_t pfn) noexcept nogil
# pmap_copy at fork: enter every mapping of src in [start, end) into dst (same
# page, same protection) where dst has none; returns how many.
cdef int64_t pmap_copy(vm_ctx_t* vm, pmap_t* dst, pmap_t* src, int64_t start, int64_t end) noexcept nogil
# Demote every 2 MiB mapping of a reservation.
cdef void pmap_demote_reserv(vm_ctx_t* vm, vm_reserv_t* rv) noexcept nogil
