# mmbench_shmem.vma — the per-process VMA set and the VMA <-> i_mmap links.
#
# The kernel keeps VMAs in a maple tree; the model keeps the same in-order view
# (the sorted, binary-searched array of mmbench.blocks.vmaset) and accounts the maple_node
# objects such a tree needs for map_count VMAs (maple_nodes_for, an estimate).
# Every VMA is linked into its file's i_mmap, keyed by the file range it maps:
# that is the whole reverse map of this design.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from mmbench_shmem.objects cimport mm_struct, vm_area_struct, shmem_inode_info

from mmbench.blocks.vmaset cimport (vmaset_lower_bound, vmaset_find, vmaset_fully_mapped,
                                    vmaset_any_mapped, vmaset_reserve, vmaset_insert, vmaset_remove,
                                    vmaset_move_check)
from mmbench_shmem.objects cimport vma_span, VM_WRITE, VM_SHARED

# The set itself is the block mmbench.blocks.vmaset over mm.vmas / map_count / vmas_cap.

cdef inline int64_t vma_lower_bound(mm_struct* mm, uint64_t vpn) noexcept nogil:
    """Index of the first VMA with vm_end > vpn (map_count if none)."""
    return vmaset_lower_bound(<void**>mm.vmas, mm.map_count, vma_span(), vpn)

cdef inline vm_area_struct* find_vma(mm_struct* mm, uint64_t vpn) noexcept nogil:
    """The VMA containing vpn, or NULL."""
    cdef int64_t i = vmaset_find(<void**>mm.vmas, mm.map_count, vma_span(), &mm.mmap_cache, vpn)
    return mm.vmas[i] if i >= 0 else NULL

cdef inline bint range_fully_mapped(mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
    return vmaset_fully_mapped(<void**>mm.vmas, mm.map_count, vma_span(), start, end)

cdef inline bint range_any_mapped(mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
    return vmaset_any_mapped(<void**>mm.vmas, mm.map_count, vma_span(), start, end)

cdef inline bint vma_movable(void* v) noexcept nogil:
    """A VMA move_pages may take pages from or put pages in: private and writable."""
    return ((<vm_area_struct*>v).vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE

cdef inline int range_move_check(mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
    """vmaset_move_check over mm's VMAs: MM_OK, MM_EINVAL or MM_ESEGV."""
    return vmaset_move_check(<void**>mm.vmas, mm.map_count, vma_span(), start, end, vma_movable)

cdef inline int vmas_reserve(mm_struct* mm, int64_t extra) noexcept nogil:
    """Make room for `extra` more VMAs in the array: 0 or -1 (out of memory)."""
    return vmaset_reserve(<void***>&mm.vmas, &mm.vmas_cap, mm.map_count + extra)

cdef inline void vmas_insert(mm_struct* mm, vm_area_struct* vma) noexcept nogil:   # room reserved
    vmaset_insert(<void**>mm.vmas, &mm.map_count, vma_span(), vma)

cdef inline void vmas_remove_at(mm_struct* mm, int64_t idx) noexcept nogil:
    vmaset_remove(<void**>mm.vmas, &mm.map_count, idx, 1)

# i_mmap links (vma_link_file / vma_unlink_file); they keep vm_file.i_count
cdef void vma_link_file(vm_area_struct* vma) noexcept nogil
cdef void vma_unlink_file(vm_area_struct* vma) noexcept nogil
# __split_vma: `vma` keeps [vm_start, addr), `new` (caller-allocated) gets
# [addr, vm_end) with the matching vm_pgoff; `new` is linked and inserted.
cdef void split_vma(mm_struct* mm, vm_area_struct* vma, vm_area_struct* new,
                    uint64_t addr) noexcept nogil
# merge vmas[idx] with vmas[idx+1] when they are adjacent views of one file
# with equal flags; returns the VMA freed (caller frees it) or NULL.
cdef vm_area_struct* try_merge_next(mm_struct* mm, int64_t idx) noexcept nogil

# no VMA of file f maps any offset in [first, last]
cdef bint file_range_unmapped(shmem_inode_info* f, uint64_t first, uint64_t last) noexcept nogil

# maple_node objects a tree of `n` VMAs needs (estimate, see vma.pyx)
cdef int64_t maple_nodes_for(int64_t n) noexcept nogil
