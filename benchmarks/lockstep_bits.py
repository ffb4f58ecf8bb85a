"""Which stacked products keep each run's bits here (what nnlab.lockstep relies on).

    .venv/bin/python benchmarks/lockstep_bits.py [--threads 1]

On random data of each shape, at the given BLAS thread count:
1. the first layer's wide products, x (M, 784) @ W (784, k * N) and x^T @ delta, block by
   block against the narrow product of each block (`nnlab.nn.stacked.wide_product_exact`,
   the probe a group runs once per shape);
2. np.matmul over (k, M, n) stacks, forward, weight and input gradients, slice by slice
   against the 2-D products, laid out as a run lays them out;
3. sums over the batch of stacked arrays against each run's own;
4. np.matmul over (k, M, n) views of a wide (M, k * n) array (the first layer's activations
   as the second layer reads them, its gradient by them as written), and the first layer's
   narrow products through views (x @ a run's block of W0 and x^T @ its block of the wide
   delta, each written into its block of a wide output), against the 2-D products of
   contiguous copies.
A "n" marks a shape where the stacked form rounds differently: there a group makes one
narrow product per run instead.
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from nnlab.nn.stacked import wide_product_exact

ROWS = (1, 10, 25, 50, 64, 100, 128, 500, 1024)
RUNS = (2, 3, 11)


def wide_table() -> None:
    print("1. wide first-layer products, one letter per k in", RUNS)
    for n_out in (16, 36, 100, 256):
        for rows in ROWS:
            marks = ["".join("Y" if wide_product_exact(rows, 784, n_out, k, np.float32,
                                                       gradient) else "n" for k in RUNS)
                     for gradient in (False, True)]
            print(f"  784 x {n_out:3d}, M = {rows:4d}: forward {marks[0]}  gradient {marks[1]}")


def stacked_products() -> list[tuple]:
    """(M, n_in, n_out, k) of stacks whose products differ from the 2-D ones."""
    rng = np.random.default_rng(1)
    differ = []
    for rows in (10, 25, 50, 100, 128, 500):
        for n_in, n_out in ((36, 16), (16, 10), (100, 10), (256, 10), (256, 256)):
            for k in (2, 5, 11, 40):
                x, W = rng.random((k, rows, n_in), np.float32), rng.random((k, n_in, n_out),
                                                                          np.float32)
                delta = rng.random((k, n_out, rows), np.float32).transpose(0, 2, 1)  # F, as
                forward, grad_W = x @ W, x.transpose(0, 2, 1) @ delta  # the head's gradient
                grad_x = delta @ W.transpose(0, 2, 1)
                if not all(np.array_equal(forward[i], x[i] @ W[i])
                           and np.array_equal(grad_W[i], x[i].T @ delta[i])
                           and np.array_equal(grad_x[i], delta[i] @ W[i].T) for i in range(k)):
                    differ.append((rows, n_in, n_out, k))
    return differ


def wide_views() -> list[tuple]:
    """(M, n_1, n_2, k, dtype) where products through views of wide arrays differ from the
    2-D products of contiguous copies ((M, 784, n_1, k, dtype) for the first layer's)."""
    rng = np.random.default_rng(3)
    differ = []
    for dtype in (np.float32, np.float64):
        for rows in (2, 25, 100, 500, 1024, 5000):
            for n_1, n_2 in ((36, 16), (16, 10), (256, 100)):
                for k in (2, 3, 11):
                    wide = rng.standard_normal((rows, k * n_1)).astype(dtype)
                    runs = wide.reshape(rows, k, n_1).transpose(1, 0, 2)  # (k, M, n_1) views
                    W = rng.standard_normal((k, n_1, n_2)).astype(dtype)
                    delta = rng.standard_normal((k, rows, n_2)).astype(dtype)
                    grad_wide = np.empty_like(wide)
                    np.matmul(delta, W.transpose(0, 2, 1),
                              out=grad_wide.reshape(rows, k, n_1).transpose(1, 0, 2))
                    forward, grad_W = runs @ W, runs.transpose(0, 2, 1) @ delta
                    columns = [slice(i * n_1, (i + 1) * n_1) for i in range(k)]
                    if not all(np.array_equal(forward[i], np.ascontiguousarray(runs[i]) @ W[i])
                               and np.array_equal(grad_W[i],
                                                  np.ascontiguousarray(runs[i]).T @ delta[i])
                               and np.array_equal(grad_wide[:, columns[i]], delta[i] @ W[i].T)
                               for i in range(k)):
                        differ.append((rows, n_1, n_2, k, np.dtype(dtype).name))
                    # the first layer run by run: (M, 784) @ blocks of (784, k * n_1)
                    x = rng.standard_normal((rows, 784)).astype(dtype)
                    W0 = rng.standard_normal((785, k * n_1)).astype(dtype)[:784]
                    delta = rng.standard_normal((rows, k * n_1)).astype(dtype)
                    z, grad_W0 = np.empty((rows, k * n_1), dtype), np.empty_like(W0)
                    for block in columns:
                        np.matmul(x, W0[:, block], out=z[:, block])
                        np.matmul(x.T, delta[:, block], out=grad_W0[:, block])
                    if not all(np.array_equal(z[:, block], x @ np.ascontiguousarray(W0[:, block]))
                               and np.array_equal(grad_W0[:, block],
                                                  x.T @ np.ascontiguousarray(delta[:, block]))
                               for block in columns):
                        differ.append((rows, 784, n_1, k, np.dtype(dtype).name))
    return differ


def batch_sums() -> bool:
    """Whether sums over the batch of stacked arrays equal each run's."""
    rng = np.random.default_rng(2)
    same = True
    for rows in (10, 25, 100, 500):
        for n in (10, 16, 36):
            for k in (2, 11):
                wide = rng.random((rows, k * n), np.float32)
                same &= np.array_equal(wide.sum(axis=0), np.concatenate(
                    [np.ascontiguousarray(wide[:, i * n:(i + 1) * n]).sum(axis=0)
                     for i in range(k)]))
                stack = rng.random((k, n, rows), np.float32).transpose(0, 2, 1)
                same &= all(np.array_equal(stack.sum(axis=1)[i], stack[i].sum(axis=0))
                            for i in range(k))
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args()
    with threadpool_limits(limits=args.threads):
        wide_table()
        differ = stacked_products()
        print("2. stacked np.matmul equal to the 2-D products:",
              "yes, every shape" if not differ else f"no at {differ}")
        print("3. sums over the batch equal each run's:", "yes" if batch_sums() else "no")
        differ = wide_views()
        print("4. products through views of wide arrays equal those of contiguous copies:",
              "yes, every shape" if not differ else f"no at {differ}")


if __name__ == "__main__":
    main()
