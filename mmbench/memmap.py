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
