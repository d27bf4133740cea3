# maplist — an address-ordered list of map entries with an interval-tree index:
# the part of a vm_map that does not depend on what an entry maps.  A design
# embeds map_entry_link_t as the first member of its entry struct (`link`) and
# map_list_t as the first member of its map struct (`list`): the design passes
# &e.link / &map.list here, and turns a link back into its entry with a cast
# (container_of at offset 0), in the accessors beside its structs.
# All operations are inline: nothing here owns memory.

from libc.stdint cimport int64_t, uint64_t

from mmbench.blocks.itree cimport itnode_t, itree_t, itree_insert, itree_remove, itree_update, itree_first
from mmbench.core cimport MM_OK, MM_ESEGV, MM_EINVAL, VPN_BITS

ctypedef struct map_entry_link_t:
    itnode_t node                      # first: the map's search tree (keys [start, end-1])
    map_entry_link_t* prev             # address-ordered list
    map_entry_link_t* next
    int64_t start                      # [start, end) in pages
    int64_t end

ctypedef struct map_list_t:
    itree_t tree                       # entries by address, O(log n) lookups
    map_entry_link_t* first
    map_entry_link_t* last
    map_entry_link_t* hint             # last entry found (lookup starts here)
    int64_t nentries

cdef inline void maplist_index(map_list_t* m, map_entry_link_t* e) noexcept nogil:
    e.node.start = <uint64_t>e.start
    e.node.last = <uint64_t>(e.end - 1)
    itree_insert(&m.tree, &e.node)

cdef inline void maplist_link_after(map_list_t* m, map_entry_link_t* after,
                                    map_entry_link_t* e) noexcept nogil:
    """Insert e after `after` (NULL: at the front) on the list and in the tree."""
    e.prev = after
    e.next = m.first if after == NULL else after.next
    if e.next != NULL:
        e.next.prev = e
    else:
        m.last = e
    if after != NULL:
        after.next = e
    else:
        m.first = e
    m.nentries += 1
    maplist_index(m, e)

cdef inline void maplist_unlink(map_list_t* m, map_entry_link_t* e) noexcept nogil:
    if e.prev != NULL:
        e.prev.next = e.next
    else:
        m.first = e.next
    if e.next != NULL:
        e.next.prev = e.prev
    else:
        m.last = e.prev
    if m.hint == e:
        m.hint = e.prev if e.prev != NULL else e.next
    m.nentries -= 1
    itree_remove(&m.tree, &e.node)

cdef inline void maplist_set_range(map_list_t* m, map_entry_link_t* e,
                                   int64_t start, int64_t end) noexcept nogil:
    """Change a linked entry's range (its list position stays valid, so its
    place in the tree's start order does too: updated in place)."""
    e.start = start
    e.end = end
    itree_update(&m.tree, &e.node, <uint64_t>start, <uint64_t>(end - 1))

cdef inline map_entry_link_t* maplist_first_ending_after(map_list_t* m, int64_t vpn,
                                                         int64_t vpn_end) noexcept nogil:
    """First entry with end > vpn (the entry holding vpn, or the next one)."""
    cdef map_entry_link_t* e = m.hint
    if e != NULL and e.start <= vpn < e.end:
        return e
    return <map_entry_link_t*>itree_first(&m.tree, <uint64_t>vpn, <uint64_t>vpn_end)

cdef inline map_entry_link_t* maplist_lookup(map_list_t* m, int64_t vpn, int64_t vpn_end) noexcept nogil:
    """The entry holding vpn, or NULL (vm_map_lookup_entry); it becomes the hint."""
    cdef map_entry_link_t* e = maplist_first_ending_after(m, vpn, vpn_end)
    if e == NULL or e.start > vpn:
        return NULL
    m.hint = e
    return e

cdef inline bint maplist_range_free(map_list_t* m, int64_t start, int64_t end,
                                    int64_t vpn_end) noexcept nogil:
    cdef map_entry_link_t* e = maplist_first_ending_after(m, start, vpn_end)
    return e == NULL or e.start >= end

cdef inline bint maplist_range_mapped(map_list_t* m, int64_t start, int64_t end,
                                      int64_t vpn_end) noexcept nogil:
    cdef map_entry_link_t* e = maplist_first_ending_after(m, start, vpn_end)
    cdef int64_t covered = start
    while e != NULL and e.start <= covered and covered < end:
        covered = e.end
        e = e.next
    return covered >= end

cdef inline int maplist_mremap_check(map_list_t* m, int64_t old_vpn, int64_t npages,
                                     int64_t new_vpn) noexcept nogil:
    """The contract's mremap preconditions on a map: MM_OK or the status to return."""
    cdef int64_t vpn_end = (<int64_t>1) << VPN_BITS
    if new_vpn < old_vpn + npages and old_vpn < new_vpn + npages:
        return MM_EINVAL
    if not maplist_range_mapped(m, old_vpn, old_vpn + npages, vpn_end):
        return MM_ESEGV
    if not maplist_range_free(m, new_vpn, new_vpn + npages, vpn_end):
        return MM_EINVAL
    return MM_OK

cdef inline map_entry_link_t* maplist_detach_run(map_list_t* m, map_entry_link_t* e, int64_t end,
                                                 int64_t delta) noexcept nogil:
    """Unlink e and its successors starting below end, shift them by delta pages;
    return them as a detached list in address order."""
    cdef map_entry_link_t* moved = NULL
    cdef map_entry_link_t* tail = NULL
    cdef map_entry_link_t* nx
    while e != NULL and e.start < end:
        nx = e.next
        maplist_unlink(m, e)
        e.start += delta
        e.end += delta
        e.next = NULL
        e.prev = tail
        if tail == NULL:
            moved = e
        else:
            tail.next = e
        tail = e
        e = nx
    return moved

cdef inline void maplist_attach_run(map_list_t* m, map_entry_link_t* moved, int64_t start,
                                    int64_t vpn_end) noexcept nogil:
    """Link a detached run (from maplist_detach_run) at the free range at start."""
    cdef map_entry_link_t* dest = maplist_first_ending_after(m, start, vpn_end)
    cdef map_entry_link_t* nx
    dest = m.last if dest == NULL else dest.prev
    while moved != NULL:
        nx = moved.next
        maplist_link_after(m, dest, moved)
        dest = moved
        moved = nx
