"""The price of an anon_vma_chain cloned into an anon_vma that already exists
(avc_clone), fitted from a fork by the last process of a short chain of forks,
and the held-out deeper chain it has to extrapolate to.  Made-up figures with
round numbers: the fit's arithmetic is on trial, never the host's speed."""
from __future__ import annotations

import numpy as np
import pytest

from mmbench import calibrate as C, estimate as est

XS = [0, 2048, 8192]
#: made-up per-VMA slopes (ns): never touched, written, written by the last
#: process of a chain of FIT_DEPTH forks; the PTE and table prices below
UNTOUCHED, TOUCHED, SHORT, FIT_DEPTH = 800.0, 2700.0, 4300.0, 2
FORK_PTE, PTE_ZAP, PT_PAGE = 100.0, 100.0, 768.0


def _series(slope, icpt=2.0e6, rng=None, n=15):
    med = [icpt + slope * x for x in XS]
    samples = [list(m * rng.uniform(0.995, 1.005, n)) for m in med] if rng is not None \
        else [[m] * n for m in med]
    return {"x": list(XS), "median": med, "samples": samples}


def _figs(with_chain=True, rng=None):
    """Just enough figures for the fit's fork prices (the other prices need their
    probes: every single-valued one is given a constant, so they fit to a number)."""
    def one(v):
        return {"median": float(v), "samples": [float(v)] * 15, "units_per_sample": 1}
    m = {"zero_page_read_fault": 600.0, "anon_write_fault": 1500.0,
         "sparse_write_fault": 1500.0 + PT_PAGE, "mprotect_present": 900.0,
         "mprotect_empty": 500.0, "cow_copy_fault": 2000.0, "munmap_shared": PTE_ZAP,
         "munmap_exclusive": 250.0, "memfd_hit_fault": 1100.0, "cow_reuse_fault": 700.0,
         "memfd_miss_fault": 2400.0, "fork_empty": 90000.0}
    figs = {k: one(v) for k, v in m.items()}
    figs["fork_pages"] = _series(FORK_PTE + PTE_ZAP, rng=rng)
    figs["fork_vmas"] = _series(UNTOUCHED, rng=rng)
    figs["fork_touched_vmas"] = _series(TOUCHED, rng=rng)
    if with_chain:
        figs["fork_chain_short_vmas"] = dict(_series(SHORT, rng=rng), depth=FIT_DEPTH)
    return figs


def test_cloned_chain_price_is_the_short_chains_growth_per_level():
    c = C.fit(_figs())
    clone = (SHORT - TOUCHED) / FIT_DEPTH
    assert c["avc_clone"]["ns"] == pytest.approx(clone, abs=0.1)
    # fork one deep: 1 anon_vma + its own chain (struct_alloc) + 1 cloned chain
    structs = TOUCHED - UNTOUCHED - FORK_PTE - PTE_ZAP - PT_PAGE / 256
    assert c["struct_alloc"]["ns"] == pytest.approx((structs - clone) / 2, abs=0.1)
    assert "fork_chain_short_vmas" in c["avc_clone"]["from"]
    assert "fork_chain_vmas" not in c["avc_clone"]["from"].replace("fork_chain_short", "")
    # the three structs of a fork one deep cost what they did before the split
    old = C.fit(_figs(with_chain=False))
    assert "avc_clone" not in old
    assert 2 * c["struct_alloc"]["ns"] + c["avc_clone"]["ns"] == pytest.approx(
        3 * old["struct_alloc"]["ns"], abs=0.3)


def test_chain_depth_travels_with_the_series_into_the_bootstrap():
    figs = _figs(rng=np.random.default_rng(3))
    costs = C.fit_with_intervals(figs)
    assert costs["avc_clone"]["low"] <= costs["avc_clone"]["ns"] <= costs["avc_clone"]["high"]
    idx = np.arange(15)
    assert C._resampled(figs, idx, "median")["fork_chain_short_vmas"]["depth"] == FIT_DEPTH
    # a series without its depth is not a chain fit: no price, struct_alloc over 3
    figs["fork_chain_short_vmas"].pop("depth")
    assert "avc_clone" not in C.fit(figs)


def test_deeper_held_out_chain_prices_one_cloned_chain_per_level():
    """The held-out chain (depth 4 in the full profile) with the kernel's counts:
    vma + 2 struct_alloc + (depth + 1) avc_clone + the PTE's copy and zap."""
    c = C.fit(_figs())
    depth = C.PROFILES["full"]["depth"]
    e = est.estimate_ns(C.kernel_counts("fork_chain_vmas", depth), {"costs": c})
    assert e["derived"]["cloned_avc_alloc"] == e["derived"]["cloned_avc_free"] == depth + 1
    assert e["breakdown"]["avc_clone"] == pytest.approx((depth + 1) * c["avc_clone"]["ns"])
    assert e["breakdown"]["struct_alloc"] == pytest.approx(2 * c["struct_alloc"]["ns"])
    want = (c["vma"]["ns"] + 2 * c["struct_alloc"]["ns"] + (depth + 1) * c["avc_clone"]["ns"]
            + c["fork_pte"]["ns"] + c["pte_zap"]["ns"] + c["pt_page"]["ns"] / 256)
    assert e["events_ns"] == pytest.approx(want, rel=1e-9)


def test_the_design_counts_the_clones_of_a_chain():
    """The linux design's twin of the held-out chain: depth + 2 chains and one anon_vma
    per VMA, so the estimator derives depth + 1 cloned chains."""
    p = C.PROFILES["quick"]
    v, d = max(p["fork_vmas"]), p["depth"]
    ev, _ = C.twin_events("linux", f"fork_chain_vmas:{v}", "fork_chain_vmas:0", v, p)
    assert ev["alloc:anon_vma_chain"] == pytest.approx(d + 2)
    assert ev["alloc:anon_vma"] == pytest.approx(1)
    e = est.estimate_ns(ev, {"costs": C.fit(_figs())}, design="linux")
    assert e["derived"]["cloned_avc_alloc"] == pytest.approx(d + 1)


def test_the_fit_chain_is_shorter_than_the_held_out_one():
    """The held-out chain stays an extrapolation: no profile fits on its depth, and the
    held-out probe's figure is not a fit input."""
    for name, p in C.PROFILES.items():
        assert 1 <= p["fit_depth"] < p["depth"], name
    rows = [r[0] for r in C.probe_table(C.PROFILES["quick"])]
    assert any(r.startswith("fork_chain_short_vmas@") for r in rows)
    figs = _figs()
    figs["fork_chain_vmas"] = dict(_series(9e9), depth=4)     # absurd: must change nothing
    assert C.fit(figs) == C.fit(_figs())
