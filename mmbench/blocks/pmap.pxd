# pmap — the machine-dependent layer of the BSD-style designs, as a block.
#
# A BSD VM keeps two things per address space below the map entries: the CPU
# page table (4 levels on amd64) and, for every managed page, the list of
# <pmap, va> pairs mapping it (the pv list: "who maps this page").  Designs
# call the pmap through the same small interface the BSD kernels use; an
# implementation decides how the pv entries are stored, which is where the
# BSDs differ and what their metadata costs:
#
#   implementation           pv storage                                 used by
#   pmap_netbsd (this dir)   first mapping in the page's own pmap_page  uvm
#                            (no pv_entry); further ones in 64-B
#                            pv_entry's carved from per-pmap 4 KiB
#                            pv_pages (63 each)
#   pmap_pvchunk (this dir)  every mapping a pv_entry in per-pmap        freebsd
#                            4 KiB pv_chunks (168 each; the simulator
#                            packs one in 1400 B, pmap_pvchunk.pxd)
#
# The block is split the same way.  `pmap.pyx` (this interface) holds the
# page-table side every implementation shares — entering, removing,
# protecting and moving PTEs, freeing empty tables, accounting them — and
# calls the implementation's pv operations (`ctx.pv`) for the pv side.  An
# implementation module provides:
#
#   pmap_t                          its pmap, a pmap_hdr_t first
#   pmap_bootstrap(ctx, npages)     ctx.pv and the simulator's size of its pv containers,
#                                   for the pages pfn [0, npages) (through
#                                   pmap_ctx_init; pmap_ctx_destroy undoes it); 0 / -1.
#                                   A page's pv list head lives in its frame descriptor
#                                   (the kernel's md in vm_page): no per-pfn array
#   pmap_pinit(ctx, pm, pid)        pmap_create (charges struct pmap); 0 / -1
#   pmap_release(ctx, pm)           pmap_destroy of a pmap without mappings
#   pmap_pv_count(pm)               mappings its pv side tracks for pm
#
# (pmap_netbsd also answers pmap_page_mappers and pmap_check_page for uvm;
# pmap_pvchunk exports its pv list and pv primitives instead, which freebsd's
# superpages, reverse-map walks and check() use)
#
# and everything else is called here on &pm.hdr:
#
#   pmap_enter(ctx, hdr, vpn, pfn, writable, leaf)  map pfn at vpn (replacing
#                                   what was there); 0 / -1 out of memory
#   pmap_remove(ctx, hdr, start, end)        unmap a range; PTEs removed
#   pmap_protect(ctx, hdr, start, end)       clear write; PTEs changed
#   pmap_reserve_move(ctx, hdr, start, end, delta, floor, ceiling)  its tables first
#   pmap_move(ctx, hdr, start, end, delta)   move a range's PTEs (mremap)
#   pmap_free_tables(ctx, hdr, floor, ceiling)   free the empty tables of a hole
#   pmap_remove_all(ctx, pfn)                unmap a page's 4 KiB mappings everywhere,
#                                            in the order ctx.pv.pv_first gives them
#   pmap_zap(ctx, hdr, pfn, vpn)             clear one present PTE
#   pmap_pte(hdr, vpn)                       the PTE (0: none)
#   pmap_leaf(ctx, hdr, vpn)                 vpn's PTE page, allocated if missing
#   pmap_demote_range / pmap_superpages      2 MiB mappings (see below)
#
# The context names the machine's frames, counters and slab caches by index,
# so a design registers its caches in any order it likes.
#
# 2 MiB mappings.  A design with superpages (FreeBSD's pmap_promote_pde) sets
# ctx.pde: a PTE page whose 512 entries stand for one 2 MiB mapping keeps them
# marked PTE_PROMOTED (the kept page of pmap_insert_pt_page), and the
# page-table side here hands such a mapping to ctx.pde where a 4 KiB operation
# would split it: demote before changing one PTE inside it, remove or
# write-protect it whole when the range covers it (one PDE), demote the range
# before moving it.  After pmap_enter, ctx.pde.try_promote may promote.  The
# pv side of a 2 MiB mapping (one pv entry on the physical superpage's list)
# is the design's.  Without ctx.pde (all NULL) no PTE is ever PTE_PROMOTED.

from libc.stdint cimport uint64_t, int64_t
from mmbench.core cimport kmem_cache_t
from mmbench.blocks.frames cimport frames_t, pfn_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t
from mmbench.blocks.handles cimport handles_t

cdef struct pmap_ctx_s
ctypedef pmap_ctx_s pmap_ctx_t

cdef enum:
    NPTEPG = 512               # PTEs per page-table page: one 2 MiB mapping
    PVC_SLAB_BYTES = 64 * 4096 # bytes of pv containers the simulator maps at once (not modelled)
    PVC_SLABS_MAX = 1 << 30    # slabs a machine may map (64 TiB of pv containers: no limit)
    PTE_PROMOTED = 1 << 4      # PTE_SOFT0: the PTE lies under a 2 MiB mapping (PG_PS|PG_PROMOTED
                               # PDE); the PTE page is the one kept for demotion

ctypedef struct pmap_hdr_t:   # the first member of every implementation's pmap_t
    pgtable_t pt
    int64_t pt_accounted[4]   # tables already reported to the caches
    int64_t resident_count    # present PTEs
    int64_t pid               # for reverse-map answers

# the pv side: record, forget, or re-address the mapping <pm, vpn> of page pfn
ctypedef int (*pv_enter_fn)(pmap_ctx_t* ctx, pmap_hdr_t* pm, pfn_t pfn, int64_t vpn) noexcept nogil
ctypedef void (*pv_remove_fn)(pmap_ctx_t* ctx, pmap_hdr_t* pm, pfn_t pfn, int64_t vpn) noexcept nogil
ctypedef void (*pv_move_fn)(pmap_ctx_t* ctx, pmap_hdr_t* pm, pfn_t pfn, int64_t vpn,
                            int64_t nvpn) noexcept nogil
# the mapping pmap_remove_all takes next: False when the page has none left
ctypedef bint (*pv_first_fn)(pmap_ctx_t* ctx, pfn_t pfn, pmap_hdr_t** pm,
                             int64_t* vpn) noexcept nogil

ctypedef struct pmap_pv_ops_t:
    pv_enter_fn pv_enter      # 0, or -1 out of memory (nothing recorded)
    pv_remove_fn pv_remove
    pv_move_fn pv_move
    pv_first_fn pv_first

# the 2 MiB mappings (see above): t is the kept PTE page of the mapping holding vpn
ctypedef void (*pde_demote_fn)(pmap_ctx_t* ctx, pmap_hdr_t* pm, pt_node_t* t,
                               int64_t vpn) noexcept nogil
ctypedef void (*pde_remove_fn)(pmap_ctx_t* ctx, pmap_hdr_t* pm, pt_node_t* t,
                               int64_t base) noexcept nogil
ctypedef void (*pde_promote_fn)(pmap_ctx_t* ctx, pmap_hdr_t* pm, pt_node_t* t, int64_t vpn,
                                pfn_t pfn) noexcept nogil

ctypedef struct pmap_pde_ops_t:
    pde_demote_fn demote      # pmap_demote_pde: 512 4 KiB mappings again
    pde_remove_fn remove      # pmap_remove_pde: the whole mapping, its PTE page emptied
    pde_promote_fn try_promote  # pmap_enter's test (t full, page's reservation full)

cdef struct pmap_ctx_s:
    frames_t* fr              # the machine's frames (mapcount kept = PTEs mapping the page)
    uint64_t* ctr             # the machine's counters (C_* ids)
    kmem_cache_t* kc          # the machine's slab caches
    int kc_pgd                # first of four consecutive caches: pgd, pud, pmd, pte tables
    int kc_pv                 # the 4 KiB containers of pv entries (pv_page / pv_chunk): the
                              # kernel's size, charged per container whatever pvc_bytes is
    int kc_pmap               # struct pmap, or -1 when the design charges it itself
    int64_t npages            # pfns [0, npages) are managed pages (have pv lists, kept in
                              # their frame descriptors by the implementation)
    handles_t pmap_tab        # pmap_netbsd: its live pmaps by number, so that a pv word can
                              # name a pmap in fewer bits than a pointer (pmap_netbsd.pxd;
                              # mmbench.blocks.handles); empty, no numbers, otherwise
    handles_t pvc_tab         # pmap_pvchunk: its live pv_chunks by number, so that a page's
                              # pv list head names its first pv_entry in 32 bits
                              # (pmap_pvchunk.pxd); empty, no numbers, otherwise
    pmap_pv_ops_t pv          # the implementation's pv side (set by pmap_bootstrap)
    int64_t pvc_bytes         # the simulator's size of one pv container (set by pmap_bootstrap:
                              # 4096 for pmap_netbsd, less for pmap_pvchunk's packed chunks)
    void* pvc_spare           # containers freed and kept for the next pvc_alloc (linked
                              # through their first word)
    char* pvc_carve           # the next never-used container of the newest slab
    int64_t pvc_carve_left    # never-used containers left in it
    handles_t pvc_slabs       # every slab mapped (PVC_SLAB_BYTES each), numbered 0, 1, …
                              # in order; unmapped at pmap_ctx_destroy
    pmap_pde_ops_t pde        # 2 MiB mappings (the design's; all NULL: none)

# The containers pv entries are carved from (FreeBSD's pv_chunk, NetBSD's
# pv_page) hang on two lists of their pmap (with room / full) by a link that
# is the container's first member (pc_list / pvp_list), so the container of a
# link is the link's address (pvc_of_link).  The kernel's are 4 KiB pages; the
# simulator's are ctx.pvc_bytes long (an implementation may pack its entries
# tighter than the kernel does; kc_pv still charges the kernel's 4 KiB each).
ctypedef struct pvc_link_t:
    pvc_link_t* next
    pvc_link_t* prev

cdef inline void* pvc_of_link(pvc_link_t* l) noexcept nogil:
    return <void*>l

cdef inline void pvc_push(pvc_link_t** head, pvc_link_t* l) noexcept nogil:
    l.prev = NULL
    l.next = head[0]
    if head[0] != NULL:
        head[0].prev = l
    head[0] = l

cdef inline void pvc_unlink(pvc_link_t** head, pvc_link_t* l) noexcept nogil:
    if l.prev != NULL:
        l.prev.next = l.next
    else:
        head[0] = l.next
    if l.next != NULL:
        l.next.prev = l.prev

cdef inline void pmap_kc_alloc(pmap_ctx_t* ctx, int c) noexcept nogil:
    ctx.kc[c].active += 1
    ctx.kc[c].allocs += 1

cdef inline void pmap_kc_free(pmap_ctx_t* ctx, int c) noexcept nogil:
    ctx.kc[c].active -= 1
    ctx.kc[c].frees += 1

# the lifecycle every implementation shares (pmap.pyx): the context with the
# implementation's pv side and the size of its pv containers (pvc_bytes, at most
# 4096: one of the kernel's pages; its numbered tables empty, taking no numbers), and a pmap of
# `size` bytes that starts with its header (pmap_create / pmap_destroy: tables, and
# struct pmap charged to kc_pmap when that is not -1)
cdef int pmap_ctx_init(pmap_ctx_t* ctx, int64_t npages, pmap_pv_ops_t pv,
                       int64_t pvc_bytes) noexcept nogil  # 0
cdef void pmap_ctx_destroy(pmap_ctx_t* ctx) noexcept nogil
cdef int pmap_create(pmap_ctx_t* ctx, pmap_hdr_t* pm, size_t size, int64_t pid) noexcept nogil
cdef void pmap_destroy(pmap_ctx_t* ctx, pmap_hdr_t* pm) noexcept nogil
# a new container of ctx.pvc_bytes (charged to kc_pv), NULL out of memory; give one back.
# Containers come from slabs of PVC_SLAB_BYTES mapped with mmap, as the kernel takes
# whole pages for them (so 4096-byte containers are 4 KiB-aligned, which pmap_netbsd
# relies on), and a container given back waits on ctx.pvc_spare for the
# next pvc_alloc (the slabs are unmapped with the context).  The heap's 4 KiB-aligned
# allocations (posix_memalign) cost about 14 B more per resident page under
# freebsd thp=never (96.9 B/page against 63 B/page after) and fragmented the heap
# when a pv_page was taken and drained again and again (uvm's fault-ahead after
# fork).  kc_pv is charged and credited per container, as the kernel's.
cdef void* pvc_alloc(pmap_ctx_t* ctx) noexcept nogil
cdef void pvc_free(pmap_ctx_t* ctx, void* c) noexcept nogil
cdef void pvc_free_list(pmap_ctx_t* ctx, pvc_link_t** head) noexcept nogil   # every container on it

# the page-table side, shared by every implementation (pmap.pyx)
cdef void pmap_account_tables(pmap_ctx_t* ctx, pmap_hdr_t* pm) noexcept nogil
cdef int pmap_enter(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t vpn, pfn_t pfn, bint writable,
                    pt_node_t* leaf) noexcept nogil
cdef int64_t pmap_remove(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end) noexcept nogil
cdef int64_t pmap_protect(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end) noexcept nogil
cdef int pmap_reserve_move(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end,
                           int64_t delta, int64_t floor, int64_t ceiling) noexcept nogil  # -1: no memory
cdef int64_t pmap_move(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end,
                       int64_t delta) noexcept nogil
cdef void pmap_free_tables(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t floor, int64_t ceiling) noexcept nogil
cdef void pmap_zap(pmap_ctx_t* ctx, pmap_hdr_t* pm, pfn_t pfn, int64_t vpn) noexcept nogil
cdef int64_t pmap_remove_all(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil     # mappings removed
cdef uint64_t pmap_pte(pmap_hdr_t* pm, int64_t vpn) noexcept nogil
# vpn's PTE page, allocated (and accounted) if missing; NULL out of memory
cdef pt_node_t* pmap_leaf(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t vpn) noexcept nogil
cdef void pmap_demote_range(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end) noexcept nogil
cdef int64_t pmap_superpages(pmap_hdr_t* pm) noexcept nogil             # 2 MiB mappings
