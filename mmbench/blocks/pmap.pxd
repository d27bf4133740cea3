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
#   pv_chunk (FreeBSD amd64) every mapping a pv_entry in per-pmap        freebsd (still
#                            4 KiB pv_chunks (168 each)                  backends/mmbench_freebsd/pmap)
#
# The interface every implementation provides (same names, same contracts;
# pmap_t, pv_entry_t and the pv-list heads are the implementation's own):
#
#   pmap_bootstrap(ctx, npages)     per-page pv heads for pfn [0, npages); 0 / -1
#   pmap_ctx_destroy(ctx)           frees them
#   pmap_pinit(ctx, pm, pid)        a new empty pmap (charges struct pmap); 0 / -1
#   pmap_release(ctx, pm)           destroys a pmap without mappings
#   pmap_enter(ctx, pm, vpn, pfn, writable, leaf)   map pfn at vpn (replacing
#                                   what was there); 0 / -1 out of memory
#   pmap_remove(ctx, pm, start, end)      unmap a range; returns PTEs removed
#   pmap_protect(ctx, pm, start, end)     clear write; returns PTEs changed
#   pmap_remove_all(ctx, pfn)       unmap a page everywhere (pmap_page_protect
#                                   to VM_PROT_NONE); returns mappings removed
#   pmap_move(ctx, pm, start, end, delta) move a range's PTEs (mremap)
#   pmap_free_tables(ctx, pm, floor, ceiling)  free empty tables of a hole
#   pmap_pte(pm, vpn)               the PTE (0: none)
#   pmap_pv_count(pm)               mappings the pv layer tracks for pm
#   pmap_page_mappers(ctx, pfn, pids, vpns, max)   the page's <pid, vpn> pairs
#
# The context names the machine's frames, counters and slab caches by index,
# so a design registers its caches in any order it likes.

from libc.stdint cimport uint64_t, int64_t
from mmbench.core cimport kmem_cache_t
from mmbench.blocks.frames cimport frames_t

ctypedef struct pmap_ctx_t:
    frames_t* fr              # the machine's frames (mapcount kept = PTEs mapping the page)
    uint64_t* ctr             # the machine's counters (C_* ids)
    kmem_cache_t* kc          # the machine's slab caches
    int kc_pgd                # first of four consecutive caches: pgd, pud, pmd, pte tables
    int kc_pv                 # the 4 KiB containers of pv entries (pv_page / pv_chunk)
    int kc_pmap               # struct pmap, or -1 when the design charges it itself
    int64_t npages            # pfns [0, npages) have pv heads
    void* pv_heads            # per pfn, the implementation's pv head (pmap_page_t …)

cdef inline void pmap_kc_alloc(pmap_ctx_t* ctx, int c) noexcept nogil:
    ctx.kc[c].active += 1
    ctx.kc[c].allocs += 1

cdef inline void pmap_kc_free(pmap_ctx_t* ctx, int c) noexcept nogil:
    ctx.kc[c].active -= 1
    ctx.kc[c].frees += 1
