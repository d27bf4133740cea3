# mmbench_shmem.inode — shmem inodes, reflink groups and the reflink clone.
#
# A private anonymous mapping is a private shmem file; fork gives the child a
# *reflink clone* of it: a new inode whose i_pages names the very same frames
# at the same offsets (reflink_clone), each frame gaining one reference per
# file that holds it.  Files cloned from one origin form a reflink_group: the
# only files that can share a frame, hence the set an rmap walk must search.

from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.frames cimport frames_t
from mmbench_shmem.objects cimport shmem_inode_info, reflink_group

# shmem_file_setup: a new empty file (private ones get a fresh reflink_group
# unless `group` is given).  Linked on *sb.  NULL when out of memory.
cdef shmem_inode_info* shmem_inode_alloc(shmem_inode_info** sb, bint private, uint64_t ino,
                                         reflink_group* group) noexcept nogil
# evict: the file must be empty (truncated) and unmapped.  Returns 1 when its
# reflink_group was freed with it, else 0.
cdef int shmem_inode_free(shmem_inode_info** sb, shmem_inode_info* inode) noexcept nogil
# Make `dst` (empty, same group) name every frame `src` holds, at the same
# offsets (xa_clone: a node-by-node copy of i_pages), taking one frame
# reference per entry.  0, or -1 when an xa_node allocation failed (dst is
# then still empty and no reference was taken).
cdef int reflink_clone(shmem_inode_info* src, shmem_inode_info* dst, frames_t* fr) noexcept nogil
# how many files hold the frame now (refcount - mapcount)
cdef int frame_file_refs(frames_t* fr, uint64_t pfn) noexcept nogil
