# Implementation of shmem inodes and reflink clones; see inode.pxd.
from libc.stdlib cimport calloc, free
from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.frames cimport pfn_t, frame_t
from mmbench.blocks.xarray cimport xa_clone, xa_node_t, XA_CHUNK_SIZE
from mmbench.blocks.pagecache cimport mapping_init

cdef void group_add(reflink_group* g, shmem_inode_info* inode) noexcept nogil:
    inode.group = g
    inode.group_prev = NULL
    inode.group_next = g.head
    if g.head != NULL:
        g.head.group_prev = inode
    g.head = inode
    g.nr_members += 1

cdef bint group_del(shmem_inode_info* inode) noexcept nogil:
    """Leave the group; True when the group became empty and was freed."""
    cdef reflink_group* g = inode.group
    if inode.group_prev != NULL:
        inode.group_prev.group_next = inode.group_next
    else:
        g.head = inode.group_next
    if inode.group_next != NULL:
        inode.group_next.group_prev = inode.group_prev
    g.nr_members -= 1
    inode.group = NULL
    if g.nr_members == 0:
        free(g)
        return True
    return False

cdef shmem_inode_info* shmem_inode_alloc(shmem_inode_info** sb, bint private, uint64_t ino,
                                         reflink_group* group) noexcept nogil:
    cdef shmem_inode_info* inode = <shmem_inode_info*>calloc(1, sizeof(shmem_inode_info))
    if inode == NULL:
        return NULL
    mapping_init(&inode.i_data)
    inode.i_ino = ino
    inode.private = private
    if private:
        if group == NULL:
            group = <reflink_group*>calloc(1, sizeof(reflink_group))
            if group == NULL:
                free(inode)
                return NULL
        group_add(group, inode)
    inode.sb_next = sb[0]
    if sb[0] != NULL:
        sb[0].sb_prev = inode
    sb[0] = inode
    return inode

cdef int shmem_inode_free(shmem_inode_info** sb, shmem_inode_info* inode) noexcept nogil:
    cdef int group_freed = 0
    if inode.group != NULL:
        group_freed = 1 if group_del(inode) else 0
    if inode.sb_prev != NULL:
        inode.sb_prev.sb_next = inode.sb_next
    else:
        sb[0] = inode.sb_next
    if inode.sb_next != NULL:
        inode.sb_next.sb_prev = inode.sb_prev
    free(inode)
    return group_freed

cdef void get_frames(xa_node_t* n, frames_t* fr) noexcept nogil:
    """One more reference on every frame below node `n` (the clone's)."""
    cdef int i
    for i in range(XA_CHUNK_SIZE):
        if n.slots[i] == 0:
            continue
        if n.shift == 0:
            fr.f[<pfn_t>(n.slots[i] - 1)].refcount += 1
        else:
            get_frames(<xa_node_t*><size_t>n.slots[i], fr)

cdef int reflink_clone(shmem_inode_info* src, shmem_inode_info* dst, frames_t* fr) noexcept nogil:
    if xa_clone(&dst.i_data.i_pages, &src.i_data.i_pages) != 0:
        return -1
    dst.i_data.nrpages = src.i_data.nrpages
    dst.nr_thps = src.nr_thps            # the clone holds the same large folios
    dst.i_size = src.i_size
    if dst.i_data.i_pages.root != NULL:
        get_frames(dst.i_data.i_pages.root, fr)
    return 0

cdef int frame_file_refs(frames_t* fr, uint64_t pfn) noexcept nogil:
    cdef frame_t* d = &fr.f[<pfn_t>pfn]
    return d.refcount - d.mapcount
