"""nnlab's core against PyTorch on CPU, side by side in one run, and the presets' times.

Run in the benchmark venv (torch is never a library dependency):

    python3 -m venv .bench-venv && .bench-venv/bin/pip install torch==2.13.0 numpy -e .
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .bench-venv/bin/python benchmarks/bench_core.py

Prints the machine and library versions, then three tables:
1. epoch time (50,000 MNIST training examples) of the same network, batch, optimiser and
   BLAS/intra-op thread count in nnlab (its real `train()` loop, evaluation time
   subtracted) and in an idiomatic PyTorch loop, with the ratio nnlab / torch (the first
   epoch, and for Adam also the 4th, where decaying moments would turn subnormal);
2. the achieved GFLOP/s of the batch-128 case against the machine's measured sgemm peak;
3. each preset's seconds and test accuracy through `train()` (evaluations included).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import scipy
from threadpoolctl import threadpool_info, threadpool_limits

from nnlab.data import load_mnist
from nnlab.datasets import Dataset
from nnlab.presets import PRESETS
from nnlab.train import TrainConfig, evaluate, train


@dataclass(frozen=True)
class Case:
    """One architecture/optimiser/batch setting, described once for both libraries."""

    name: str
    sizes: list[int]
    activation: str
    output: str
    loss: str
    optimizer: str
    eta: float
    batch_size: int
    torch_steps: int | None = None  # time this many torch steps and scale to an epoch
    warm_epochs: int = 0  # train this many epochs first, then time the next one

    @property
    def target(self) -> str:
        """The target for nnlab / torch (first-epoch rows only)."""
        if self.warm_epochs:
            return "-"
        return {128: "<= 0.70", 1: "<= 0.15"}.get(self.batch_size, "-")

    def config(self, n_train: int) -> TrainConfig:
        target = [0.01, 0.99] if self.loss == "mse" else [0.0, 1.0]
        return TrainConfig(sizes=self.sizes, activation=self.activation, output=self.output,
                           loss=self.loss, target_range=target, optimizer=self.optimizer,
                           eta=self.eta, batch_size=self.batch_size,
                           epochs=self.warm_epochs + 1,
                           eval_steps=[self.warm_epochs * (n_train // self.batch_size)],
                           init="xavier")

    def flops_per_example(self) -> float:
        """Multiply-adds x 2 of forward + backward (no input gradient for the first layer)."""
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        forward = sum(2 * n_in * n_out for n_in, n_out in pairs)
        weight_grads = forward
        input_grads = sum(2 * n_in * n_out for n_in, n_out in pairs[1:])
        return forward + weight_grads + input_grads


SEED_PRESETS = ["seed-000", "seed-001", "seed-002", "seed-003", "seed-004", "fast98"]

CASES = [
    Case("784-256-10 relu, Adam, batch 128", [784, 256, 10], "relu", "softmax",
         "cross_entropy", "adam", 1e-3, 128),
    Case("784-36-16-10 sigmoid, SGD, batch 500", [784, 36, 16, 10], "sigmoid", "softmax",
         "cross_entropy", "sgd", 1.0, 500),
    Case("784-36-16-10 sigmoid, SGD, batch 100 (the studies' setting)", [784, 36, 16, 10],
         "sigmoid", "softmax", "cross_entropy", "sgd", 1.0, 100),
    Case("784-100-10 sigmoid, SGD, batch 1 (MSE)", [784, 100, 10], "sigmoid", "sigmoid",
         "mse", "sgd", 0.3, 1, torch_steps=5000),
    # long Adam runs: rarely-on pixels leave Adam moments decaying through the subnormal
    # range from the third epoch on (nnlab flushes them, see optim.flush_before_subnormal)
    Case("784-256-10 relu, Adam, batch 128, 4th epoch", [784, 256, 10], "relu", "softmax",
         "cross_entropy", "adam", 1e-3, 128, warm_epochs=3),
]


# --- measurements -----------------------------------------------------------------------

def sgemm_peak(repeats: int = 5, n: int = 2048) -> float:
    """Best GFLOP/s of an n x n float32 matmul through numpy's BLAS."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def nnlab_epoch(case: Case, data: Dataset) -> float:
    """Seconds of the timed epoch in nnlab's train() (its last), minus an evaluation."""
    config = case.config(len(data.train))
    run = train(config, data)
    x_val, x_test = data.val.features(np.float32), data.test.features(np.float32)
    eval_seconds = _timed(lambda: (evaluate(run.model, x_val, data.val.y),
                                   evaluate(run.model, x_test, data.test.y)))
    return run.curve["seconds"].iloc[-1] - run.curve["seconds"].iloc[-2] - eval_seconds


def torch_epoch_runner(case: Case, data: Dataset):
    """A function timing one epoch (or torch_steps steps, scaled to an epoch) of an
    idiomatic PyTorch loop for `case`, after case.warm_epochs untimed ones; the model and
    optimiser persist between calls."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(data.train.features(np.float32))
    y = torch.from_numpy(np.asarray(data.train.y, dtype=np.int64))
    generator = torch.Generator().manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(case.sizes[:-1], case.sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(case.sizes) - 2:
            layers.append(torch.nn.ReLU() if case.activation == "relu" else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    optimizer = (torch.optim.Adam(model.parameters(), lr=case.eta) if case.optimizer == "adam"
                 else torch.optim.SGD(model.parameters(), lr=case.eta))

    def loss_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if case.loss == "cross_entropy":
            return F.cross_entropy(logits, labels)
        targets = torch.full_like(logits, 0.01)
        targets[torch.arange(len(labels)), labels] = 0.99
        return 0.5 * ((torch.sigmoid(logits) - targets) ** 2).sum(dim=1).mean()

    n_batches = len(y) // case.batch_size
    steps = min(case.torch_steps or n_batches, n_batches)

    def epoch() -> float:
        started = time.perf_counter()
        order = torch.randperm(len(y), generator=generator)
        for k in range(steps):
            rows = order[k * case.batch_size:(k + 1) * case.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - started) * n_batches / steps

    for _ in range(case.warm_epochs):
        epoch()
    return epoch


# --- report -----------------------------------------------------------------------------

def environment(threads: int) -> list[str]:
    import torch

    blas = {(i["internal_api"], i.get("version"), i.get("architecture"))
            for i in threadpool_info() if i["user_api"] == "blas"}
    cpuinfo = open("/proc/cpuinfo").read().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                  if line.startswith("flags")), [])
    # numpy vectorises float32 tanh and expm1 only with AVX-512: it changes which
    # elementwise forms are fastest (see nnlab.nn.activations)
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return [
        f"machine: {cpu} ({simd}), {os.cpu_count()} cores; threads used: {threads} "
        "(BLAS for nnlab, torch.set_num_threads for torch)",
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__},"
        f" torch {torch.__version__}; numpy/scipy BLAS: "
        + ", ".join(f"{api} {version} ({arch})" for api, version, arch in sorted(blas)),
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
        f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", nargs="*", default=SEED_PRESETS, metavar="NAME",
                        help="presets to time (default: the seed recipes and fast98; none: "
                        "skip)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data = load_mnist()
    print("\n".join(environment(args.threads)))
    with threadpool_limits(args.threads):
        peak = sgemm_peak()
        print("\n| case | nnlab s/epoch | torch s/epoch | nnlab / torch | target |")
        print("|---|---|---|---|---|")
        achieved = None
        for case in CASES:
            # alternate the two libraries and keep each one's best: load that comes and goes
            # on a shared machine then hits both alike
            torch_epoch = torch_epoch_runner(case, data)
            ours, theirs = np.inf, np.inf
            for _ in range(args.repeats):
                ours = min(ours, nnlab_epoch(case, data))
                theirs = min(theirs, torch_epoch())
            peak = max(peak, sgemm_peak())
            target = case.target
            scaled = " (torch scaled from 5000 steps)" if case.torch_steps else ""
            print(f"| {case.name}{scaled} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f}x "
                  f"| {target} |", flush=True)
            if case.batch_size == 128 and not case.warm_epochs:
                n_examples = (len(data.train) // 128) * 128
                achieved = case.flops_per_example() * n_examples / ours / 1e9
        print(f"\nsgemm peak (numpy float32 2048^3, best of 5 before and after each case): "
              f"{peak:.1f} GFLOP/s")
        print(f"batch-128 case: {achieved:.1f} GFLOP/s achieved = {achieved / peak:.0%} of the "
              "sgemm peak (target >= 65%)")
        if not args.presets:
            return
        print("\n| preset | seconds | test_acc | val_acc | status |")
        print("|---|---|---|---|---|")
        for name in args.presets:
            run = train(PRESETS[name].config, data)
            print(f"| {name} | {run.metrics['seconds']:.1f} | {run.metrics['test_acc']:.4f} | "
                  f"{run.metrics['val_acc']:.4f} | {run.status} |", flush=True)


if __name__ == "__main__":
    main()
