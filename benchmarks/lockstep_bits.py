"""Which stacked products keep each run's bits here (what nnlab.lockstep relies on).

    .venv/bin/python benchmarks/lockstep_bits.py [--threads 1]

On random data of each shape, at the given BLAS thread count, with every product laid out
as a run's Dense layer lays it out (units along the rows, nnlab.nn.layers.Dense):
1. the first layer's wide products, W0's weights (k * N, 784) @ x^T and delta (k * N, M) @
   x, block of rows by block against the narrow product of each block
   (`nnlab.nn.stacked.wide_product_exact`, the probe a group runs once per shape);
2. np.matmul over stacks, forward (k, n_out, n_in) @ (k, n_in, M), weight gradient
   (k, n_out, M) @ (k, M, n_in) and input gradient (k, n_in, n_out) @ (k, n_out, M), slice
   by slice against the 2-D products of a run's arrays;
3. sums over the batch of stacked arrays against each run's own;
4. the first layer's narrow products through blocks of W0 (its weights with a leading
   dimension of 785, each run's block of the wide delta and output), against the 2-D
   products of contiguous copies.
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
    for n_out in (12, 16, 32, 36, 100, 256):
        for rows in ROWS:
            marks = ["".join("Y" if wide_product_exact(rows, 784, n_out, k, np.float32,
                                                       gradient) else "n" for k in RUNS)
                     for gradient in (False, True)]
            print(f"  784 x {n_out:3d}, M = {rows:4d}: forward {marks[0]}  gradient {marks[1]}")


def stacked_products() -> list[tuple]:
    """(M, n_in, n_out, k) of stacks whose products differ from a run's 2-D ones."""
    rng = np.random.default_rng(1)
    differ = []
    for rows in (10, 25, 50, 100, 128, 500):
        for n_in, n_out in ((36, 16), (16, 10), (100, 10), (256, 10), (256, 256)):
            for k in (2, 5, 11, 40):
                a = rng.random((k, n_in, rows), np.float32)  # inputs, units along the rows
                W_t = rng.random((k, n_out, n_in), np.float32)  # W^T, as a run stores W
                delta = rng.random((k, n_out, rows), np.float32)
                forward, grad_W_t = W_t @ a, delta @ a.transpose(0, 2, 1)
                grad_a = W_t.transpose(0, 2, 1) @ delta
                if not all(np.array_equal(forward[i], W_t[i] @ a[i])
                           and np.array_equal(grad_W_t[i], delta[i] @ a[i].T)
                           and np.array_equal(grad_a[i], W_t[i].T @ delta[i])
                           for i in range(k)):
                    differ.append((rows, n_in, n_out, k))
    return differ


def batch_sums() -> bool:
    """Whether sums over the batch of stacked arrays equal each run's (a run sums its
    (batch, n) gradient, a transposed view of (n, batch), over the batch)."""
    rng = np.random.default_rng(2)
    same = True
    for rows in (10, 25, 100, 500):
        for n in (10, 16, 36):
            for k in (2, 11):
                wide = rng.random((k * n, rows), np.float32)
                same &= all(np.array_equal(wide.sum(axis=1)[i * n:(i + 1) * n],
                                           wide[i * n:(i + 1) * n].copy().T.sum(axis=0))
                            for i in range(k))
    return same


def first_layer_blocks() -> list[tuple]:
    """(M, n_1, k, dtype) where the first layer's narrow products through blocks of W0 and
    of the wide arrays differ from the 2-D products of contiguous copies."""
    rng = np.random.default_rng(3)
    differ = []
    for dtype in (np.float32, np.float64):
        for rows in (2, 25, 100, 500, 1024, 5000):
            for n_1 in (36, 16, 256):
                for k in (2, 3, 11):
                    x = rng.standard_normal((rows, 784)).astype(dtype)
                    W0 = rng.standard_normal((k * n_1, 785)).astype(dtype)[:, :784]
                    delta = rng.standard_normal((k * n_1, rows)).astype(dtype)
                    z = np.empty((k * n_1, rows), dtype)
                    grad_W0 = np.empty((k * n_1, 785), dtype)[:, :784]
                    blocks = [slice(i * n_1, (i + 1) * n_1) for i in range(k)]
                    for block in blocks:
                        np.matmul(W0[block], x.T, out=z[block])
                        np.matmul(delta[block], x, out=grad_W0[block])
                    if not all(np.array_equal(z[block], np.ascontiguousarray(W0[block]) @ x.T)
                               and np.array_equal(grad_W0[block],
                                                  np.ascontiguousarray(delta[block]) @ x)
                               for block in blocks):
                        differ.append((rows, n_1, k, np.dtype(dtype).name))
    return differ


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
        differ = first_layer_blocks()
        print("4. the first layer's products through blocks of wide arrays equal those of "
              "contiguous copies:", "yes, every shape" if not differ else f"no at {differ}")


if __name__ == "__main__":
    main()
