"""The memory map in the contract: the ``memmap`` design option.

Every design accepts ``memmap = "page" | "memdesc"`` (default ``"page"``, as
today's kernels); ``Machine.__init__`` adds it to any design's options and
validates it with :func:`memmap_option`.  It chooses how the per-frame
descriptors of host memory are charged in ``metadata()``:

* ``"page"``: the design's own descriptor per frame in use, as the design
  accounts it (``page`` 64 B for the Linux-derived designs, ``vm_page`` for
  freebsd and uvm: the class attribute ``memmap_struct`` names that cache).
* ``"memdesc"``: Matthew Wilcox's memory-descriptor plan
  (kernelnewbies.org/MatthewWilcox/Memdescs and …/Memdescs/Path): the
  per-frame descriptor shrinks to one word, ``memdesc`` 8 B per frame, and
  every folio gets one dynamically allocated descriptor, ``folio`` 80 B (the
  ``struct folio`` of the Path page: flags 8, lru 16, mapping 8, index 8,
  private 8, ``_refcount``/``_mapcount``/``pincount`` 4 each + 4 padding,
  pfn 8, memcg 8; a multiple of 16 as the 16-byte-aligned memdesc slabs
  require).  Folios are counted by the frame block
  (``mmbench.blocks.frames``): one per order-0 frame, one per large folio.

The framework does the charging once, in ``Machine.metadata()`` and
``Machine.struct_sizes()``: a design does nothing but keep its per-frame
cache and allocate large folios through ``frame_alloc_contig``.  Values read
and counters never depend on the option.
"""
from __future__ import annotations

from mmbench import errors

MEMMAP_MODES = ("page", "memdesc")
MEMMAP_DEFAULT = "page"
#: bytes per frame of the memdesc word (``struct page { unsigned long memdesc; }``)
SIZEOF_MEMDESC = 8
#: bytes per folio of the dynamically allocated descriptor (Memdescs/Path ``struct folio``)
SIZEOF_FOLIO_DESC = 80


def memmap_option(options: dict) -> str:
    """The validated ``memmap`` mode of a design's options (InvalidArgument otherwise)."""
    mode = options.get("memmap", MEMMAP_DEFAULT)
    if not isinstance(mode, str) or mode not in MEMMAP_MODES:
        raise errors.InvalidArgument(
            f"memmap must be one of {', '.join(map(repr, MEMMAP_MODES))}, got {mode!r}")
    return mode


def memdesc_rows(frames: int, folios: int) -> dict:
    """The metadata() rows of the memdesc layout for `frames` frames in `folios` folios."""
    return {"memdesc": (frames, frames * SIZEOF_MEMDESC), "folio": (folios, folios * SIZEOF_FOLIO_DESC)}


def metadata_per_resident_page(name: str, npages: int = 1 << 15, thp: str = "never",
                               memmap: str = MEMMAP_DEFAULT, **options) -> dict:
    """Exact metadata bytes per resident page of one process that mapped
    `npages` private pages at a 2 MiB-aligned address and wrote each once, on
    design `name` with the given ``thp`` and ``memmap``.  ``frame_bytes`` is the
    memory map's share (the per-frame descriptor rows, or memdesc + folio)."""
    import mmbench
    m = mmbench.open(name, ram_pages=max(1 << 16, 2 * npages), thp=thp, memmap=memmap, **options)
    p = m.spawn()
    m.mmap(p, 0, npages)
    for v in range(npages):
        m.write(p, v, 1)
    md = {k: v for k, v in m.metadata().items() if v[0]}
    rows = (type(m).memmap_struct,) if memmap == "page" else ("memdesc", "folio")
    total = sum(b for _, b in md.values())
    frame = sum(md.get(r, (0, 0))[1] for r in rows)
    return {"design": name, "thp": thp, "memmap": memmap, "resident_pages": npages,
            "bytes": total, "bytes_per_page": total / npages, "frame_bytes": frame,
            "frame_bytes_per_page": frame / npages, "structs": md, "kind": "exact"}


def compare(names=None, npages: int = 1 << 15) -> list:
    """metadata_per_resident_page for every (design, thp in never/always, memmap in
    page/memdesc): the table docs/hugepages.md shows."""
    import mmbench
    names = names or [n for n in mmbench.backends() if n != "reference"]
    return [metadata_per_resident_page(n, npages, thp=t, memmap=mm)
            for n in names for t in ("never", "always") for mm in MEMMAP_MODES]


def main() -> None:
    """python -m mmbench.memmap: metadata per resident page with both memory maps."""
    print("design   thp     memmap   B/page (all)  B/page (memory map)")
    for r in compare():
        print(f"{r['design']:8s} {r['thp']:7s} {r['memmap']:8s} {r['bytes_per_page']:12.2f}  "
              f"{r['frame_bytes_per_page']:10.2f}")


if __name__ == "__main__":
    main()
