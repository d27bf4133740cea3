# Implementation of the VMA set; see vma.pxd.
#
# maple_nodes_for: with MT_FLAGS_ALLOC_RANGE the tree stores VMAs and the gaps
# between them, so n VMAs make at most 2n+1 ranges.  Leaves (maple_range_64)
# hold 16 ranges, internal nodes (maple_arange_64) 10 children.  The count
# below assumes full nodes, i.e. it is a lower-bound *estimate* of what the
# kernel allocates (real leaves are often half full after splits).

from libc.stdint cimport int64_t, uint64_t, uint32_t
from mmbench.blocks.itree cimport itree_insert, itree_remove, itree_first
from mmbench_shmem.objects cimport vma_pgoff_of

cdef void vma_link_file(vm_area_struct* vma) noexcept nogil:
    vma.shared_rb.start = vma.vm_pgoff
    vma.shared_rb.last = vma.vm_pgoff + (vma.vm_end - vma.vm_start) - 1
    itree_insert(&vma.vm_file.i_data.i_mmap, &vma.shared_rb)
    vma.vm_file.i_count += 1

cdef void vma_unlink_file(vm_area_struct* vma) noexcept nogil:
    itree_remove(&vma.vm_file.i_data.i_mmap, &vma.shared_rb)
    vma.vm_file.i_count -= 1

cdef void split_vma(mm_struct* mm, vm_area_struct* vma, vm_area_struct* new,
                    uint64_t addr) noexcept nogil:
    new.vm_start = addr
    new.vm_end = vma.vm_end
    new.vm_pgoff = vma_pgoff_of(vma, addr)
    new.vm_flags = vma.vm_flags
    new.vm_file = vma.vm_file
    new.vm_mm = mm
    vma_unlink_file(vma)
    vma.vm_end = addr
    vma_link_file(vma)
    vma_link_file(new)
    vmas_insert(mm, new)

cdef vm_area_struct* try_merge_next(mm_struct* mm, int64_t idx) noexcept nogil:
    cdef vm_area_struct* a
    cdef vm_area_struct* b
    if idx < 0 or idx + 1 >= mm.map_count:
        return NULL
    a = mm.vmas[idx]
    b = mm.vmas[idx + 1]
    if (a.vm_end != b.vm_start or a.vm_file != b.vm_file or a.vm_flags != b.vm_flags
            or a.vm_pgoff + (a.vm_end - a.vm_start) != b.vm_pgoff):
        return NULL
    vma_unlink_file(b)
    vma_unlink_file(a)
    a.vm_end = b.vm_end
    vma_link_file(a)
    vmas_remove_at(mm, idx + 1)
    return b

cdef int64_t maple_nodes_for(int64_t n) noexcept nogil:
    cdef int64_t ranges, width, total
    if n <= 0:
        return 0
    ranges = 2 * n + 1
    width = (ranges + 15) // 16
    total = width
    while width > 1:
        width = (width + 9) // 10
        total += width
    return total

cdef bint file_range_unmapped(shmem_inode_info* f, uint64_t first, uint64_t last) noexcept nogil:
    return itree_first(&f.i_data.i_mmap, first, last) == NULL
