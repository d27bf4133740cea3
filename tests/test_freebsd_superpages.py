"""freebsd superpages: vm_reserv reservations, pmap_promote_pde / pmap_demote_pde,
and how fork's shadow objects get their own reservations."""
import pytest

import mmbench
from mmbench.conformance import default_settings, run_conformance

NP = 512            # pages per reservation / 2 MiB mapping
RV_BYTES = 160      # struct vm_reserv on amd64


def ctr(m, *names):
    c = m.counters()
    return tuple(c[n] for n in names)


def touched(thp="always", npages=NP, vpn=0, ram=1 << 16):
    m = mmbench.open("freebsd", ram_pages=ram, thp=thp)
    p = m.spawn()
    m.mmap(p, vpn, npages)
    for v in range(vpn, vpn + npages):
        m.write(p, v, v + 1)
    return m, p


def test_first_touch_of_an_aligned_gib_promotes_512_superpages():
    m, p = touched(npages=1 << 18, ram=1 << 19)
    assert ctr(m, "reserv_alloc", "reserv_pages", "superpage_promotions") == (512, 1 << 18, 512)
    assert ctr(m, "superpage_demotions", "superpage_p_failures") == (0, 0)
    assert m.superpages(p) == 512
    md = m.metadata()
    assert md["vm_reserv"] == (512, 512 * RV_BYTES)
    assert md["pte_table"][0] == 512                 # PTE pages kept for demotion
    assert m.counters()["pv_entries"] >= (1 << 18)   # 4 KiB pv entries made, then collapsed
    m.check()
    assert [m.read(p, v) for v in (0, 511, 512, (1 << 18) - 1)] == [1, 512, 513, 1 << 18]
    m.exit(p)
    m.check()
    assert m.metadata()["vm_reserv"] == (0, 0)
    assert m.leaks() == []


def test_promotion_collapses_pv_entries_to_one_per_superpage():
    m4, p4 = touched(thp="never", npages=8 * NP)
    m2, p2 = touched(thp="always", npages=8 * NP)
    # 4096 pv entries need 25 pv_chunks of 168; 8 superpages need one pv each
    assert m4.metadata()["pv_chunk"][0] == 25
    assert m2.metadata()["pv_chunk"][0] < 25
    assert m2.superpages(p2) == 8 and m4.superpages(p4) == 0
    assert ctr(m4, "reserv_alloc", "superpage_promotions") == (0, 0)
    assert m4.metadata()["vm_reserv"] == (0, 0)
    assert m2.rmap_walk(p2, 700) == [(p2, 700)]
    for m in (m2, m4):
        m.check()


def test_unaligned_mapping_reserves_only_covered_blocks():
    # [100, 1124) covers the 2 MiB block [512, 1024) only
    m, p = touched(npages=1024, vpn=100)
    assert ctr(m, "reserv_alloc", "superpage_promotions") == (1, 1)
    assert m.superpages(p) == 1
    m.check()


def test_partial_munmap_demotes_and_whole_munmap_does_not():
    m, p = touched(npages=2 * NP)
    m.munmap(p, 10, 5)                                 # inside the first superpage
    assert ctr(m, "superpage_demotions") == (1,)
    assert m.superpages(p) == 1
    m.munmap(p, NP, NP)                                # the whole second one
    assert ctr(m, "superpage_demotions") == (1,)
    assert m.superpages(p) == 0
    assert m.read(p, 9) == 10 and m.read(p, 15) == 16
    m.check()
    m.exit(p)
    assert m.leaks() == [] and m.metadata()["vm_reserv"] == (0, 0)


def test_partial_mprotect_demotes_whole_mprotect_keeps_the_superpage():
    m, p = touched(npages=2 * NP)
    m.mprotect(p, 0, NP, False)                        # pmap_protect_pde
    assert m.superpages(p) == 2 and ctr(m, "superpage_demotions") == (0,)
    m.mprotect(p, NP + 3, 1, False)                    # cuts the second one
    assert m.superpages(p) == 1 and ctr(m, "superpage_demotions") == (1,)
    m.check()


def test_fork_copies_the_pde_and_cow_demotes_then_repromotes_in_the_shadow():
    m, p = touched(npages=NP)
    c = m.fork(p)
    assert m.superpages(p) == 1 and m.superpages(c) == 1     # pmap_copy: one PDE, one pv
    assert sorted(m.rmap_walk(p, 5)) == sorted([(p, 5), (c, 5)])
    m.check()
    m.write(p, 0, 1000)                                # COW: shadow object, demotion
    assert ctr(m, "superpage_demotions") == (1,)
    assert m.superpages(p) == 0 and m.superpages(c) == 1
    # the shadow's page came from a new reservation; the backing one stays
    assert ctr(m, "reserv_alloc") == (2,)
    assert m.metadata()["vm_reserv"][0] == 2
    m.check()
    for v in range(1, NP):
        m.write(p, v, 2000 + v)
    # the shadow's reservation is now full and every PTE writable: promoted again
    assert m.superpages(p) == 1
    assert ctr(m, "superpage_promotions") == (2,)
    assert m.read(c, 0) == 1 and m.read(p, 0) == 1000 and m.read(p, 7) == 2007
    m.check()
    m.exit(c)
    m.exit(p)
    m.check()
    assert m.leaks() == [] and m.metadata()["vm_reserv"] == (0, 0)


def test_dontneed_of_one_page_demotes_and_frees_it_from_its_reservation():
    m, p = touched(npages=NP)
    m.madvise_dontneed(p, 3, 1)
    assert ctr(m, "superpage_demotions") == (1,) and m.superpages(p) == 0
    assert m.read(p, 3) == 0
    m.check()
    m.write(p, 3, 99)                                   # refills index 3 of the reservation
    assert m.superpages(p) == 1
    m.check()


@pytest.mark.parametrize("thp,examples", [("always", 25), ("never", 10)])
def test_conformance_huge_sized_mappings(thp, examples):
    # thp=always gets more examples: a reservation renamed below index 0 by a
    # fork's vm_object_split (write_cut_fork) shows in about half the runs of 10
    run_conformance("freebsd", default_settings(max_examples=examples, stateful_step_count=30),
                    vpn_span=2048, max_npages=16, options={"thp": thp})


def test_collapse_renames_the_backing_reservation_into_the_shadow():
    m, p = touched(npages=NP)
    c = m.fork(p)
    m.write(p, 0, 1000)                  # shadow S gets its own reservation for index 0
    m.exit(c)                            # B keeps one reference (S): collapse into S
    assert m.chain_length(p, 0) == 1
    c_ = m.counters()
    assert c_["collapses"] >= 1
    # B's reservation moved to S with its pages (vm_reserv_rename); the mix of
    # the copied page 0 and B's 511 pages is two reservations: no promotion
    assert m.metadata()["vm_reserv"][0] == 2
    for v in range(NP):
        m.write(p, v, 3000 + v)
    assert m.superpages(p) == 0 and c_["superpage_promotions"] == m.counters()["superpage_promotions"]
    assert m.read(p, 0) == 3000 and m.read(p, 511) == 3511
    m.check()
    m.exit(p)
    m.check()
    assert m.leaks() == [] and m.metadata()["vm_reserv"] == (0, 0)


def test_write_after_the_child_left_takes_the_object_and_repromotes():
    m, p = touched(npages=NP)
    c = m.fork(p)
    m.exit(c)
    m.write(p, 0, 7)                     # sole reference: NEEDS_COPY cleared, no copy
    assert ctr(m, "superpage_demotions", "reserv_alloc") == (1, 1)
    for v in range(1, NP):
        m.write(p, v, v)
    assert m.superpages(p) == 1 and ctr(m, "superpage_promotions") == (2,)
    m.check()


def test_split_of_a_clipped_entry_renames_a_reservation_below_index_0():
    """Seeds 19, 26, 35 of a random fork/exit/dontneed/write run: fork splits an
    entry clipped inside a reservation (vm_object_split), and vm_reserv_rename
    moves the whole reservation to the new object, its pindex now below 0 (the
    kernel's unsigned pindex wraps).  check() used to reject that; and the
    object's reservation index, keyed by that pindex as unsigned, could hand a
    fault a reservation not covering its pindex (an index past the popmap)."""
    m = mmbench.open("freebsd", ram_pages=1 << 15, thp="always")
    p = m.spawn()
    m.mmap(p, 0, 2048)
    for v in range(600, 1100):           # object A: reservations [512, 1024), [1024, 1536)
        m.write(p, v, v + 1)
    m.madvise_dontneed(p, 650, 1)         # ONEMAPPING A: the page leaves its reservation
    m.mprotect(p, 600, 500, False)        # A's entries [0, 600) [600, 1100) [1100, 2048)
    assert ctr(m, "reserv_alloc", "reserv_pages") == (2, 500)
    c = m.fork(p)                         # [600, 1100) splits to C at offset 600:
    m.check()                             # [512, 1024) becomes [-88, 424) of C
    assert m.read(p, 650) == 0            # C's index 50: from the renamed reservation
    assert ctr(m, "reserv_alloc", "reserv_pages") == (2, 501)
    assert m.read(c, 650) == 0 and m.read(c, 700) == 701
    m.check()
    m.exit(c)
    m.exit(p)
    m.check()
    assert m.leaks() == [] and m.metadata()["vm_reserv"] == (0, 0)
