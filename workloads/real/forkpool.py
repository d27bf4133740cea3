"""A Python multiprocessing fork pool working on a dataset it inherited from its parent.

The parent builds 200,000 small Python objects, then a pool of 2 worker
processes (start method "fork") maps a function over slices of them.  The
workers only read the data, but reading a Python object writes its reference
count, so every page of objects a worker walks is copied on write: the
well-known price of fork-based Python worker pools (gunicorn, Celery prefork,
multiprocessing, PyTorch DataLoader workers).
"""
import multiprocessing as mp

DATA = [str(i) * 3 for i in range(200_000)]


def work(bounds):
    lo, hi = bounds
    return sum(len(s) for s in DATA[lo:hi])


if __name__ == "__main__":
    mp.set_start_method("fork")
    chunks = [(i, i + 25_000) for i in range(0, len(DATA), 25_000)]
    with mp.Pool(2) as pool:
        total = sum(pool.map(work, chunks))
    print(total)
