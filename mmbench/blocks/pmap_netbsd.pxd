# pmap_netbsd — NetBSD x86's pmap (sys/arch/x86/x86/pmap.c), one
# implementation of the pmap interface of mmbench/blocks/pmap.pxd.
#
#   vm_page ─ mdpage.pmap_page ┌ pp_pte   {pmap, va}   the embedded pv: the
#                              │                        page's first mapping
#                              └ pp_pvlist ──▶ pv_entry ──▶ pv_entry …
#                                              (64 B each, the further mappings)
#   pmap ─ pm_pvp_part / pm_pvp_empty ──▶ pv_page (4 KiB: header + 63 pv_entry)
#
# pmap_enter_pv puts a new mapping into the page's embedded slot when that is
# free and only otherwise takes a pv_entry from the pmap's pv_pages
# (pmap_alloc_pv: a partly used page, else a new one from pmap_pvp_cache).  So
# a page mapped once costs no pv_entry; a page mapped by parent and child
# after fork costs one.  A pv_page whose entries are all free again is given
# back (pmap_drain_pv from pmap_update, which NetBSD calls after every
# operation that removes mappings).  Removing the embedded mapping frees the
# slot; it is not refilled from the list (pmap_remove_pv), the next new
# mapping of the page takes it.
#
# Kept for the layout but not used for lookups: the per-PTP red-black tree of
# dynamic pv entries (pve_rb).  The model finds a page's pv entry by walking
# the page's list (as pmap_pp_remove does); the kernel's tree lookup is an
# optimisation of the same search and costs no memory beyond the 64 bytes.
#
# Where the model keeps struct pmap_page.  The kernel's lies inside vm_page
# (mdpage); the model's lies inside the page's frame descriptor
# (mmbench.blocks.frames), in two of its design-defined words, so the
# simulator keeps no per-page array of its own (as pmap_pvchunk, whose head
# takes the aux word instead):
#
#   frame_t.owner   pp_pvlist   the dynamic pv entries (pv_entry_t*, NULL: none)
#   frame_t.index   pp_pte      the embedded pv {pmap, va} packed in one word:
#                               (pm_num + 1) << VPN_BITS | va, 0 when free
#
# pm_num is the pmap's number in ctx.pmap_tab, the table of live pmaps
# (mmbench.blocks.handles: taken at pmap_pinit, given back at pmap_release,
# then reused), which takes 64 - VPN_BITS = 28 bits where a pointer would
# take 64: up to 2^28 - 1 pmaps alive at once, more than memory holds (each
# has a 4 KiB PGD).  The design keeps the descriptor's aux word (uvm:
# an_ref).  What the kernel's vm_page costs is accounted by the design
# (vm_page, 128 B), not by these words.
from libc.stdint cimport uint64_t, int64_t
from mmbench.core cimport VPN_BITS
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pmap cimport pmap_ctx_t, pmap_hdr_t, pvc_link_t

cdef enum:
    PVE_PER_PVP = 63           # (PAGE_SIZE / sizeof(struct pv_entry)) - 1
    PV_ENTRY_BYTES = 64        # struct pv_entry on amd64 (pmap_pv.h: "64 on amd64")
    PV_PAGE_BYTES = 4096
    PMAP_BYTES = 448           # struct pmap, amd64 (pmap_private.h; see docs/backends/uvm.md)

ctypedef struct pv_entry_t:    # 64 bytes, as the kernel's
    uint64_t pve_va            # pve_pte.pte_va (the PTP is implied by pmap + va)
    pv_entry_t* pve_next       # pve_list: the page's pp_pvlist
    pv_entry_t* pve_prev
    uint64_t pve_rb[3]         # pve_rb (see above)
    uint64_t pve_pfn           # pve_pp: the page mapped
    uint64_t _pad

ctypedef struct pv_page_t:     # 4096 bytes, 4096-aligned: pv -> pv_page -> pmap
    pvc_link_t pvp_list        # on pm_pvp_part or pm_pvp_empty
    void* pvp_pmap
    int64_t pvp_nfree
    uint64_t pvp_free          # bit i set: pvp_pve[i] is free (the kernel keeps a free list)
    uint64_t _pad[3]
    pv_entry_t pvp_pve[63]

ctypedef struct pmap_t:
    pmap_hdr_t hdr             # page tables, resident count, pid (the generic side)
    pvc_link_t* pm_pvp_part    # pv_pages with free and used entries (their pvp_list)
    pvc_link_t* pm_pvp_empty   # pv_pages with no free entry
    int64_t pm_embedded        # mappings tracked in their page's embedded slot
    int64_t pm_num             # its number in ctx.pmap_tab (the packed pp_pte names it)

cdef enum:
    PMAP_NUM_MAX = (1 << (64 - VPN_BITS)) - 1   # pm_num + 1 must fit above the va

# The implementation's part of the interface (pmap.pxd); enter, remove,
# protect, move and free_tables are the generic ones, called on &pm.hdr.
# (pmap_ctx_destroy is the block's, mmbench.blocks.pmap)
cdef int pmap_bootstrap(pmap_ctx_t* ctx, int64_t npages) noexcept nogil
cdef int pmap_pinit(pmap_ctx_t* ctx, pmap_t* pm, int64_t pid) noexcept nogil
cdef void pmap_release(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil
cdef int64_t pmap_pv_count(pmap_t* pm) noexcept nogil           # embedded + dynamic
cdef int64_t pmap_pv_dynamic(pmap_t* pm) noexcept nogil         # pv_entry's in use
# Every pv record of the page (embedded and pv_entry) names a present PTE of
# its pmap that maps this page, and they are mapcount in number: 0, or -1
# with the violation in *why.
cdef int pmap_check_page(pmap_ctx_t* ctx, pfn_t pfn, const char** why) noexcept nogil
cdef int64_t pmap_page_mappers(pmap_ctx_t* ctx, pfn_t pfn, int64_t* pids, int64_t* vpns,
                               int64_t max) noexcept nogil
