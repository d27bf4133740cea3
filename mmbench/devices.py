"""The simulated accelerator: link model, transfer report and device workloads.

A machine opened with ``devices=N`` has N accelerators.  Each one has

* its own memory: the machine's frames of node ``dev`` (``device_pages`` of
  them, 1..N; node 0 is host RAM).  A design may *oversubscribe* it: when a
  device has no free frame left, the design evicts that device's **oldest**
  page (first migrated in, first out; ``mmbench.blocks.devmirror.devmem_t``)
  back to host memory through its own migrate-to-host path, counts
  ``device_evictions`` and retries.  Eviction never changes a value;
  OutOfMemory is raised only when host memory is also exhausted.
* its own page table: a dmirror-like xarray keyed by vpn per (process,
  device), kept coherent by mmu_interval_notifier invalidations
  (``mmbench.blocks.devmirror``).
* a link to host memory, the *link model*: bandwidth (GB/s), a fixed latency
  per DMA transfer (µs) and the largest transfer (pages).  Presets live in
  ``Machine.LINKS``: ``pcie5`` (PCIe 5.0 x16: 63 GB/s, 1 µs), ``pcie4``
  (31.5 GB/s, 1.5 µs), ``c2c`` (a coherent chip-to-chip link: 450 GB/s,
  0.3 µs); or pass ``link=(gbps, latency_us, batch_pages)``.

Data copies are not executed byte by byte.  A design calls
``Machine.dma_account(npages)`` once per copy it issues (one migration call's
batch, one fault's pages); that counts ``dma_bytes`` and ``dma_transfers``
(``ceil(npages / batch_pages)`` transfers per call).  The designs count the
pages moved each way (``pages_to_device``, ``pages_to_host``).  This module
turns those exact counts into **estimated** transfer time::

    time = transfers x latency + bytes / bandwidth

so a design that migrates one page per fault pays the latency once per page
(4 KiB at 63 GB/s takes 0.065 µs: latency dominates, ~3.8 GB/s effective),
while a design that moves 2 MiB per fault amortises it (~61 GB/s).  A remote
mapping (``device_fault="remote"``) moves no page: each device access crosses
the link on its own, which the model does not count as a transfer.
"""
from __future__ import annotations

import time

import numpy as np

from mmbench import errors
from mmbench.trace import TraceBuilder

PAGE_SIZE = 4096

_COUNTERS = ("pages_to_device", "pages_to_host", "dma_bytes", "dma_transfers",
             "notifier_calls", "notifier_invalidated", "device_faults", "device_pte_writes",
             "device_tlb_invalidations", "device_evictions", "fault_device_return", "pte_zaps",
             "rmap_visits")


#: Device-fault variants, the same options for every design with devices:
#: "2m" migrates the aligned 2 MiB block around a fault, each way (GPU drivers with
#: shared virtual memory: amdgpu's SVM granularity; gmem's HPAGE_SIZE path);
#: "4k" one page per fault; "remote" maps host pages in the device page table
#: without migrating (lib/test_hmm.c's dmirror, 32 pages per hmm_range_fault; linux only).
FAULT_VARIANTS = {"2m": {"device_fault_pages": 512}, "4k": {"device_fault_pages": 1},
                  "remote": {"device_fault": "remote"}}


def device_fault_pages_option(options: dict) -> int:
    """The ``device_fault_pages`` option of a design with devices: the aligned
    block a device fault migrates, a power of two in 1..512 (512 = 2 MiB)."""
    g = options["device_fault_pages"]
    if isinstance(g, bool) or not isinstance(g, int) or not (1 <= g <= 512) or (g & (g - 1)):
        raise errors.InvalidArgument("device_fault_pages must be a power of two in 1..512")
    return g


def link_time_us(link: dict, nbytes: float, transfers: float) -> float:
    """Modelled time (µs) of `transfers` DMA transfers carrying `nbytes` over `link`."""
    return transfers * link["latency_us"] + nbytes / (link["gbps"] * 1e3)


def device_counters(m) -> dict:
    """The device-related counters of machine `m` (exact), with the DMA transfers
    of each direction when the design records them (``dma_transfers_each_way``)."""
    out = {n: m.counter(n) for n in _COUNTERS}
    each = getattr(m, "dma_transfers_each_way", None)
    if each is not None:
        w = each()
        out["dma_transfers_to_device"], out["dma_transfers_to_host"] = w["to_device"], w["to_host"]
    return out


def transfer_report(m, before: dict | None = None) -> dict:
    """Modelled transfer time and GB/s each way since `before` (device_counters()).

    Pages, bytes and transfer counts are exact; times and GB/s are estimated
    from the link model.  A design that does not record the direction of its
    transfers gets them split in proportion to the pages moved each way
    (then ``kind["transfers"]`` says "estimated").
    """
    now = device_counters(m)
    d = {k: now[k] - (before or {}).get(k, 0) for k in now}
    pages = d["pages_to_device"] + d["pages_to_host"]
    exact = "dma_transfers_to_device" in d
    out = {"link": dict(m.link), "counts": d,
           "kind": {"counts": "exact", "transfers": "exact" if exact else "estimated",
                    "time_us": "estimated", "gbps": "estimated"}}
    total_us = 0.0
    for way, key in (("to_device", "pages_to_device"), ("to_host", "pages_to_host")):
        if exact:
            transfers = d["dma_transfers_" + way]
        else:
            transfers = d["dma_transfers"] * (d[key] / pages if pages else 0.0)
        nbytes = d[key] * PAGE_SIZE
        us = link_time_us(m.link, nbytes, transfers)
        total_us += us
        out[way] = {"pages": d[key], "bytes": nbytes, "transfers": transfers,
                    "time_us": us, "gbps": (nbytes / (us * 1e3)) if us > 0 else 0.0}
    out["time_us"] = total_us
    return out


# ------------------------------------------------------------------ workloads
def pingpong_trace(npages: int = 512, rounds: int = 4, dev: int = 1, vpn: int = 0) -> np.ndarray:
    """CPU and device alternately write every page of one range (2 MiB by default).

    spawn; mmap; the CPU writes every page; then `rounds` times: the device
    writes every page, the CPU writes every page; exit.  The CPU starts so that
    the range is populated in host memory, as an application filling an input
    buffer would.
    """
    b = TraceBuilder()
    p = b.spawn()
    b.mmap(p, vpn, npages)
    b.write_range(p, vpn, npages)
    for r in range(rounds):
        for v in range(vpn, vpn + npages):
            b.device_write(dev, p, v, (r + 1) << 32 | v)
        b.write_range(p, vpn, npages, value=r + 1)
    b.exit(p)
    return b.build()


def migration_trace(npages: int = 1 << 18, dev: int = 1, vpn: int = 0, chunk: int = 512) -> np.ndarray:
    """Populate `npages` on the host, migrate them to `dev` and back in `chunk`-page calls."""
    b = TraceBuilder()
    p = b.spawn()
    b.mmap(p, vpn, npages)
    b.write_range(p, vpn, npages)
    for node in (dev, 0):
        for s in range(vpn, vpn + npages, chunk):
            b.migrate(p, s, min(chunk, vpn + npages - s), node)
    b.exit(p)
    return b.build()


def bookkeeping_throughput(name: str, npages: int = 1 << 18, chunk: int = 512, **options) -> dict:
    """Migration bookkeeping in pages/s (measured) for host->device->host of `npages`.

    The populating writes run first, in their own replay; then the migrate
    records alone are replayed with timing=False and timed as a whole.
    """
    import mmbench
    m = mmbench.open(name, ram_pages=max(1 << 20, 2 * npages), devices=1,
                     device_pages=max(1 << 16, npages), **options)
    full = migration_trace(npages, chunk=chunk)
    is_mig = full["op"] == int(mmbench.Op.MIGRATE)
    first = int(np.argmax(is_mig))
    last = len(full) - 1                     # the exit
    m.replay(full[:first], timing=False, frame=False)
    before = device_counters(m)
    t0 = time.perf_counter_ns()
    res = m.replay(full[first:last], timing=False, frame=False)
    elapsed = time.perf_counter_ns() - t0
    if np.any(res["status"] != 0):
        raise RuntimeError(f"{name}: migration replay failed")
    engine_ns = m.last_replay["elapsed_ns"]
    rep = transfer_report(m, before)
    m.replay(full[last:], timing=False, frame=False)
    moved = rep["counts"]["pages_to_device"] + rep["counts"]["pages_to_host"]
    return {"design": name, "pages": npages, "pages_moved": moved, "elapsed_ns": elapsed,
            "pages_per_s": moved / (elapsed / 1e9),
            "engine_pages_per_s": moved / (engine_ns / 1e9), "kind": "measured",
            "engine_ns": engine_ns, "leaks": m.leaks(), "transfer": rep}


def pingpong_report(name: str, npages: int = 512, rounds: int = 4, link="pcie5", **options) -> dict:
    """Run the ping-pong workload on design `name`; counters and modelled GB/s."""
    import mmbench
    m = mmbench.open(name, devices=1, link=link, **options)
    m.replay(pingpong_trace(npages, rounds), timing=False, frame=False)
    return transfer_report(m)


def pingpong_variants(names=None, npages: int = 512, rounds: int = 4, link="pcie5") -> list[dict]:
    """The ping-pong on every device design under every device-fault variant, side by
    side: one row per (design, variant); a variant the design lacks is a row with
    "unsupported" and the reason (never zeros)."""
    import mmbench
    if names is None:
        names = [n for n in mmbench.backends() if n != "reference"
                 and mmbench.registry.load(n).supports_devices]
    rows = []
    for name in names:
        for variant, opts in FAULT_VARIANTS.items():
            try:
                r = pingpong_report(name, npages, rounds, link=link, **opts)
            except (errors.NotSupported, errors.InvalidArgument) as e:
                rows.append({"design": name, "variant": variant, "unsupported": f"{type(e).__name__}: {e}"})
                continue
            rows.append({"design": name, "variant": variant, **r})
    return rows


def metadata_per_resident_page(name: str, npages: int = 4096, step: int = 1, device: int = 0,
                               **options) -> dict:
    """Exact metadata bytes per resident page: one process writes every `step`-th
    page of an `npages` mapping, then (device > 0) migrates the range there.
    ``bytes`` leaves out what the machine holds before any process exists
    (``static_bytes``: e.g. gmem's gm_mapping per device page), reported apart."""
    import mmbench
    m = mmbench.open(name, devices=max(device, 1), device_pages=max(1 << 16, npages), **options)
    empty = m.metadata()                 # what the machine holds before any process: static
    p = m.spawn()
    m.mmap(p, 0, npages)
    for v in range(0, npages, step):
        m.write(p, v, 1)
    if device:
        m.migrate(p, 0, npages, device)
    md = {k: v for k, v in m.metadata().items() if v[0]}
    resident = len(range(0, npages, step))
    static = {k: v for k, v in empty.items() if v[0]}
    total = sum(b for _, b in md.values()) - sum(b for _, b in static.values())
    return {"design": name, "resident_pages": resident, "bytes": total,
            "bytes_per_page": total / resident, "structs": md,
            "static_bytes": sum(b for _, b in static.values()), "static": static, "kind": "exact"}


def main(argv=None) -> None:
    """python -m mmbench.devices: the ping-pong and throughput tables of docs/devices.md."""
    import mmbench
    configs = [(n, {}) for n in mmbench.backends() if n != "reference"
               and mmbench.registry.load(n).supports_devices]
    print("ping-pong, 2 MiB, 4 rounds, pcie5, by device-fault variant (counts exact, GB/s estimated)")
    for r in pingpong_variants([n for n, _ in configs]):
        if "unsupported" in r:
            print(f"  {r['design']:8s} {r['variant']:6s} unsupported ({r['unsupported']})")
            continue
        c = r["counts"]
        print(f"  {r['design']:8s} {r['variant']:6s} device_faults={c['device_faults']} "
              f"fault_device_return={c['fault_device_return']} pages to dev/host="
              f"{c['pages_to_device']}/{c['pages_to_host']} transfers to dev/host="
              f"{r['to_device']['transfers']:.0f}/{r['to_host']['transfers']:.0f} "
              f"notifier_calls={c['notifier_calls']} rmap_visits={c['rmap_visits']} "
              f"GB/s to dev/host={r['to_device']['gbps']:.2f}/{r['to_host']['gbps']:.2f}")
    print("metadata per resident page (exact)")
    for label, kw in (("dense 16 MiB, host", {}), ("dense 16 MiB, device", {"device": 1}),
                      ("1 in 64 of 256 MiB, host", {"npages": 1 << 16, "step": 64})):
        for name, opts in configs:
            r = metadata_per_resident_page(name, **kw, **opts)
            static = f"  (+{r['static_bytes']:,} B static)" if r["static_bytes"] else ""
            print(f"  {label:26s} {name:8s} {r['bytes']:>10,} B  {r['bytes_per_page']:7.1f} B/page{static}")
    print("bookkeeping, 256 Ki pages host->device->host (measured)")
    for name, kw in configs:
        r = bookkeeping_throughput(name, **kw)
        print(f"  {name:8s} {r['pages_per_s'] / 1e6:.2f} M pages/s")


if __name__ == "__main__":
    main()
