"""The estimator (mmbench.estimate): bytes-accounted caches, variable-size
allocations, prices' bases and ranges, one migration-throughput definition."""
import pytest

import mmbench
from mmbench import errors, estimate as est
from mmbench.trace import TraceBuilder

CAL = {"machine": {"hostname": "testhost"},
       "costs": {"trap": {"ns": 100.0, "low": 90.0, "high": 120.0},
                 "zero_fill": {"ns": 1000.0, "low": 950.0, "high": 1100.0},
                 "struct_alloc": {"ns": 50.0, "low": 40.0, "high": 60.0},
                 "kmalloc_byte": {"ns": 0.25, "low": 0.2, "high": 0.3},
                 "vma": {"ns": 400.0}}}


def test_bytes_are_priced_per_byte_never_as_objects():
    # 262,144 bytes of amap slots in 3 allocations: 3 x struct_alloc + bytes x kmalloc_byte
    # (a lifetime price: half at allocation, the other half when they are freed)
    ev = {"alloc_bytes:amap_slots": 262144, "alloc:amap_slots": 3, "free:amap_slots": 3}
    e = est.estimate_ns(ev, CAL, design="linux")
    assert e["breakdown"] == {"struct_alloc": 150.0, "kmalloc_byte": 65536.0}
    assert e["total_ns"] == 150.0 + 65536.0
    assert e["low_ns"] == 3 * 40.0 + 262144 * 0.2 and e["high_ns"] == 3 * 60.0 + 262144 * 0.3


def test_bytes_accounted_cache_of_a_machine_gives_bytes_and_declared_allocations():
    m = mmbench.open("uvm")
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 256)
    t.write_range(p, 0, 256)
    m.replay(t.build(), timing=False)
    assert m.struct_sizes()["amap_slots"] == 1            # accounted in bytes
    ev = est.slab_events(m)
    assert ev["alloc_bytes:amap_slots"] == m.slab_allocs()["amap_slots"] > 0
    # amap_alloc1: three kmem_alloc()s per amap, never one per byte
    assert ev["alloc:amap_slots"] == 3 * m.slab_allocs()["vm_amap"]
    assert ev["alloc:amap_slots"] < ev["alloc_bytes:amap_slots"] / 16
    assert est.cost_of("alloc_bytes:amap_slots") == "kmalloc_byte"
    assert est.covered("free_bytes:amap_slots")


class _BytesMachine:
    """A stand-in design with a bytes-accounted cache and no declaration."""
    name = "plugin-x"

    def slab_allocs(self):
        return {"blob": 4096, "node": 2}

    def slab_frees(self):
        return {"blob": 0, "node": 0}

    def struct_sizes(self):
        return {"blob": 1, "node": 576}


def test_undeclared_bytes_cache_leaves_its_allocations_unpriced():
    ev = est.slab_events(_BytesMachine())
    assert "alloc:blob" not in ev and ev["alloc_bytes:blob"] == 4096
    e = est.estimate_ns(ev, CAL)
    assert "allocations_unknown:blob" in e["uncosted"]
    assert e["breakdown"]["kmalloc_byte"] == 4096 * 0.25


def test_sized_caches_pay_per_allocation_plus_per_byte():
    m = mmbench.open("shmem")
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 128, shared=True)
    t.write_range(p, 0, 128)
    m.replay(t.build(), timing=False)
    ev = est.slab_events(m)
    n = ev["alloc:xa_node"]
    assert n > 0 and ev["alloc_bytes:xa_node"] == 584 * n


def test_bookkeeping_is_beside_the_estimate_not_in_it():
    e = est.estimate_ns({"faults": 10}, CAL, measured_ns=5000.0)
    assert e["total_ns"] == 1000.0 and e["bookkeeping_ns"] == 5000.0


def test_assumed_and_own_prices_are_stated_and_widen_the_range():
    ev = {"alloc:vm_anon": 10, "free:vm_anon": 10, "faults": 1}
    e = est.estimate_ns(ev, CAL, design="uvm")
    assert e["assumed"] == ["alloc:vm_anon", "free:vm_anon"]
    assert e["basis"]["faults"] == "measured"
    assert e["basis"]["alloc:vm_anon"].startswith("assumed: a vm_anon priced as")
    assert e["low_ns"] == pytest.approx(90.0 + 10 * 40.0 / est.ASSUMED_FACTOR)
    assert e["high_ns"] == pytest.approx(120.0 + 10 * 60.0 * est.ASSUMED_FACTOR)
    # the same struct in linux is measured: no widening
    assert est.estimate_ns({"alloc:anon_vma": 10}, CAL, design="linux")["assumed"] == []

    class Own:
        name = "own-design"
        estimate_prices = {"alloc:widget": {"ns": 30.0, "source": "paper X, table 2",
                                            "uncertainty": 0.1}}
    e = est.estimate_ns({"alloc:widget": 2}, CAL, design=Own)
    # an own price is the design's: charged as declared, at the event it names
    assert e["total_ns"] == 60.0 and e["basis"]["alloc:widget"] == "own: paper X, table 2"
    assert e["low_ns"] == pytest.approx(54.0) and e["high_ns"] == pytest.approx(66.0)

    class Bad:
        name = "bad"
        estimate_prices = {"alloc:widget": {"ns": 30.0}}
    with pytest.raises(errors.InvalidArgument):
        est.estimate_ns({"alloc:widget": 1}, CAL, design=Bad)


def test_link_time_is_part_of_the_one_transfer_estimate():
    link = {"gbps": 50.0, "latency_us": 1.0}
    ev = {"faults": 2, "dma_bytes": 1_000_000, "dma_transfers": 4}
    e = est.estimate_ns(ev, CAL, link=link)
    assert e["link_ns"] == pytest.approx(1_000_000 / 50.0 + 4000.0)
    assert e["total_ns"] == pytest.approx(200.0 + e["link_ns"])
    assert "dma_bytes" not in e["uncosted"]


def test_uvm_first_touch_estimate_within_2x_of_linux():
    """The issue's check: uvm's estimated first touch per page on seq_first_touch is
    within 2x of linux's (bytes of amap slots are no longer priced as objects)."""
    from mmbench.registry import workloads as catalogue
    from mmbench.workloads._measure import measure
    cal = {"machine": {"hostname": "t"},
           "costs": {k: {"ns": v} for k, v in dict(
               trap=674.3, zero_fill=1256.3, pt_page=842.8, tlb_flush=171.0, syscall=889.0,
               copy=1857.1, pte_zap=94.7, page_free=259.8, page_cache_hit=727.9, cow_reuse=152.7,
               pagecache_add=839.6, fork_pte=128.9, vma=1347.7, struct_alloc=795.4,
               fork_base=142371.0, kmalloc_byte=0.02).items()}}
    wl = catalogue()["seq_first_touch"]
    per = {}
    for b in ("linux", "uvm"):
        recs = measure(wl, {"pages": 4096}, b, repeats=1, calibration=cal)
        per[b] = next(r["value"] for r in recs if r["metric"].endswith("estimated_ns_per_page"))
    assert per["linux"] > 0 and per["uvm"] / per["linux"] < 2.0


# --------------------------------------------------- kmalloc priced by allocation size
CURVE = {"bytes": [64, 512, 2048, 4048, 4096],
         "ns": [4.0, 20.0, 60.0, 73.0, 151.0],
         "low": [3.0, 18.0, 55.0, 70.0, 140.0],
         "high": [5.0, 22.0, 65.0, 80.0, 160.0]}
CAL_CURVE = {"machine": {"hostname": "testhost"},
             "costs": dict(CAL["costs"], kmalloc_byte={"ns": 0.25, "low": 0.2, "high": 0.3,
                                                       "curve": CURVE})}


def test_curve_is_piecewise_linear_from_zero_and_extends_its_last_segment():
    assert est.curve_at(CURVE, 0) == 0.0
    assert est.curve_at(CURVE, 32) == pytest.approx(2.0)          # 0 ns at 0 bytes to 64
    assert est.curve_at(CURVE, 64) == 4.0 and est.curve_at(CURVE, 2048) == 60.0
    assert est.curve_at(CURVE, 3048) == pytest.approx(66.5)       # halfway to 4048
    assert est.curve_at(CURVE, 4072) == pytest.approx(112.0)      # the step to a 2nd allocation
    assert est.curve_at(CURVE, 4144) == pytest.approx(151.0 + 48 * 78 / 48)
    assert est.curve_at(CURVE, 3048, "low") == pytest.approx(62.5)


def test_variable_size_allocations_read_the_curve_at_their_mean_size():
    # 10 allocations of 3,048 bytes on average: 10 x curve(3048) for the bytes,
    # 10 x struct_alloc / 2 for the allocations (their frees are not in this window)
    ev = {"alloc:pv_chunk": 10, "alloc_bytes:pv_chunk": 30480}
    e = est.estimate_ns(ev, CAL_CURVE)
    assert e["breakdown"]["kmalloc_byte"] == pytest.approx(10 * 66.5)
    assert e["breakdown"]["struct_alloc"] == 10 * 25.0
    assert e["low_ns"] == pytest.approx(10 * 62.5 + 10 * 20.0)
    assert e["high_ns"] == pytest.approx(10 * 72.5 + 10 * 30.0)
    # the same bytes in 20 allocations of half the size: 20 x curve(1524), more than
    # 10 x curve(3048) on this concave curve: the price depends on the size, not
    # only on the bytes
    more = est.estimate_ns({"alloc:pv_chunk": 20, "alloc_bytes:pv_chunk": 30480}, CAL_CURVE)
    assert more["breakdown"]["kmalloc_byte"] == pytest.approx(20 * est.curve_at(CURVE, 1524))
    assert more["breakdown"]["kmalloc_byte"] > e["breakdown"]["kmalloc_byte"]


def test_bytes_are_never_objects_with_the_curve_either():
    # 262,144 slot bytes in 3 allocations: 3 x curve(mean size), never 262,144 of anything
    ev = {"alloc_bytes:amap_slots": 262144, "alloc:amap_slots": 3}
    e = est.estimate_ns(ev, CAL_CURVE, design="linux")
    assert e["breakdown"]["kmalloc_byte"] == pytest.approx(3 * est.curve_at(CURVE, 262144 / 3))
    assert e["breakdown"]["struct_alloc"] == 3 * 25.0


def test_bytes_without_an_allocation_count_or_a_curve_keep_the_line():
    e = est.estimate_ns({"alloc_bytes:blob": 4096}, CAL_CURVE)       # allocations unknown
    assert e["breakdown"]["kmalloc_byte"] == 4096 * 0.25
    e = est.estimate_ns({"alloc_bytes:pv_chunk": 4096, "alloc:pv_chunk": 1}, CAL)   # no curve
    assert e["breakdown"]["kmalloc_byte"] == 4096 * 0.25
    assert est.per_byte(CAL["costs"], 4096, 1) is None


# ------------------------------------------ VMA splits / merges, munmap's VMA teardown
CAL_VMA = {"machine": {"hostname": "testhost"},
           "costs": dict(CAL["costs"], syscall={"ns": 300.0}, munmap_call={"ns": 900.0},
                         vma_modify={"ns": 80.0, "low": 60.0, "high": 100.0},
                         munmap_vma={"ns": 350.0, "low": 300.0, "high": 400.0})}


def test_a_call_that_splits_or_merges_vmas_pays_once_beyond_its_vmas():
    assert est.cost_of(est.DERIVED_MODIFY) == "vma_modify"
    assert est.covered("vma_splits") and est.covered("vma_merges")
    # mprotect splitting a VMA in three and merging it back: 2 calls, the linux
    # design's 2 splits and 2 merges, 2 VMAs made and freed
    ev = {"op:MPROTECT": 2, "vma_splits": 2, "vma_merges": 2,
          "alloc:vm_area_struct": 2, "free:vm_area_struct": 2}
    e = est.estimate_ns(ev, CAL_VMA)
    assert e["derived"] == {est.DERIVED_MODIFY: 2}
    assert e["breakdown"] == {"syscall": 600.0, "vma_modify": 160.0, "vma": 800.0}
    assert e["low_ns"] == 600.0 + 120.0 + 800.0
    # at most one per call: one munmap that splits at both ends and a mprotect that
    # changes only flags (no split, no merge)
    e = est.estimate_ns({"op:MUNMAP": 1, "op:MPROTECT": 1, "vma_splits": 2}, CAL_VMA)
    assert e["derived"] == {est.DERIVED_MODIFY: 2}
    e = est.estimate_ns({"op:MUNMAP": 1, "vma_splits": 2}, CAL_VMA)
    assert e["derived"] == {est.DERIVED_MODIFY: 1}
    assert est.estimate_ns({"op:MPROTECT": 5}, CAL_VMA)["derived"] == {}
    # a calibration without the price lists the derived calls as uncosted, never at 0
    assert est.DERIVED_MODIFY in est.estimate_ns(ev, CAL)["uncosted"]


def test_munmap_vma_teardown_is_derived_at_most_one_per_munmap_call():
    # 4 munmap calls, each removing one written VMA (its anon_vma and chain)
    ev = {"op:MUNMAP": 4, "free:anon_vma_chain": 4, "free:anon_vma": 4,
          "free:vm_area_struct": 4}
    e = est.estimate_ns(ev, CAL_VMA)
    assert e["derived"] == {est.DERIVED_MUNMAP: 4}
    assert e["breakdown"]["munmap_vma"] == 4 * 350.0
    assert e["breakdown"]["munmap_call"] == 4 * 900.0
    # one munmap call of many VMAs: at most one per call
    one = est.estimate_ns(dict(ev, **{"op:MUNMAP": 1}), CAL_VMA)
    assert one["derived"] == {est.DERIVED_MUNMAP: 1}
    # an exit frees chains without munmap: nothing derived, nothing charged
    ex = est.estimate_ns({"op:EXIT": 1, "free:anon_vma_chain": 40}, CAL_VMA)
    assert ex["derived"] == {} and "munmap_vma" not in ex["breakdown"]
    # munmap of never-written VMAs has no chain to unlink
    empty = est.estimate_ns({"op:MUNMAP": 4, "free:vm_area_struct": 4}, CAL_VMA)
    assert "munmap_vma" not in empty["breakdown"]
    # the derived keys are never a design's counters
    assert not set(est.DERIVED) & set(mmbench.COUNTER_NAMES)


# ------------------------------------------- anon_vma_chains cloned into an existing anon_vma
CLONE_CAL = {"costs": {"struct_alloc": {"ns": 400.0, "low": 350.0, "high": 450.0},
                       "avc_clone": {"ns": 800.0, "low": 700.0, "high": 900.0}}}


def test_cloned_chains_are_the_chains_beyond_one_per_new_anon_vma():
    # a fork 4 deep: anon_vma_clone links 5 chains into ancestors' anon_vmas, anon_vma_fork
    # makes 1 anon_vma and its own chain; the child's exit frees as many
    ev = {"alloc:anon_vma": 10, "alloc:anon_vma_chain": 60,
          "free:anon_vma": 10, "free:anon_vma_chain": 60}
    e = est.estimate_ns(ev, CLONE_CAL, design="linux")
    assert e["derived"] == {"cloned_avc_alloc": 50, "cloned_avc_free": 50}
    assert e["netted"] == {"alloc:anon_vma_chain": 50, "free:anon_vma_chain": 50}
    # lifetime prices, half at each end: 100 cloned ends x 400, 40 other ends x 200
    assert e["breakdown"] == {"avc_clone": 100 * 400.0, "struct_alloc": 40 * 200.0}
    assert e["low_ns"] == 100 * 350.0 + 40 * 175.0 and e["high_ns"] == 100 * 450.0 + 40 * 225.0
    assert est.cost_of("cloned_avc_alloc") == est.cost_of("cloned_avc_free") == "avc_clone"
    assert est.basis("cloned_avc_alloc", "linux")[0] == "measured"


def test_a_first_fault_clones_nothing_and_frees_never_go_negative():
    # __anon_vma_prepare: one anon_vma and the one chain that links it to its VMA
    e = est.estimate_ns({"alloc:anon_vma": 3, "alloc:anon_vma_chain": 3}, CLONE_CAL)
    assert e["derived"] == {} and e["breakdown"] == {"struct_alloc": 6 * 200.0}
    # a window freeing more anon_vmas than chains (roots kept alive by their
    # descendants, freed later) counts no cloned chain
    e = est.estimate_ns({"free:anon_vma": 4, "free:anon_vma_chain": 2}, CLONE_CAL)
    assert "cloned_avc_free" not in e["derived"]
    assert e["breakdown"] == {"struct_alloc": 6 * 200.0}
    # a split: anon_vma_clone gives the new VMA one chain per anon_vma, no anon_vma
    e = est.estimate_ns({"alloc:anon_vma_chain": 2, "alloc:vm_area_struct": 1}, CLONE_CAL)
    assert e["derived"] == {"cloned_avc_alloc": 2}


def test_without_a_clone_price_every_chain_is_a_struct_as_before():
    ev = {"alloc:anon_vma": 1, "alloc:anon_vma_chain": 6, "free:anon_vma": 1,
          "free:anon_vma_chain": 6}
    old = {"costs": {"struct_alloc": {"ns": 400.0}}}
    e = est.estimate_ns(ev, old, design="linux")
    assert e["breakdown"] == {"struct_alloc": 14 * 200.0}
    assert e["derived"] == {} and e["netted"] == {} and e["uncosted"] == []
    # the munmap teardown still sees the raw chain frees
    e = est.estimate_ns({"op:MUNMAP": 2, "free:anon_vma": 2, "free:anon_vma_chain": 2},
                        {"costs": dict(CLONE_CAL["costs"], munmap_vma={"ns": 10.0})})
    assert e["derived"] == {"munmap_anon_vmas": 2}
