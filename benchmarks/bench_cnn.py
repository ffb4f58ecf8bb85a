"""nnlab's CNN against PyTorch on CPU: epoch time of the same network, side by side.

Run in the benchmark venv (torch is never a library dependency):

    python3 -m venv .bench-venv && .bench-venv/bin/pip install torch==2.13.0 numpy -e .
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .bench-venv/bin/python benchmarks/bench_cnn.py

The network is the `cnn` preset's (or --layers): the torch model is built layer by layer
from the nnlab model, so both run the same architecture, initial shapes, batch size,
optimiser (Adam) and thread count (BLAS threads for nnlab, torch.set_num_threads for
torch). nnlab's time is its real `train()` loop over one epoch of the 50,000 training
images (evaluation on 256 rows only, so it costs nothing); torch's is an idiomatic loop
(randperm, index, zero_grad, forward, cross_entropy, backward, step). The two alternate,
epoch by epoch, so both see the same load on a shared machine; the table gives the best
and the median epoch of each and the ratio of the bests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from bench_core import environment
from threadpoolctl import threadpool_limits

from nnlab.data import load_mnist
from nnlab.datasets import Dataset, Split
from nnlab.nn.activations import ReLU
from nnlab.nn.cnn import CNN
from nnlab.nn.conv import Conv2D, MaxPool2D
from nnlab.nn.layers import Dense, Dropout, Flatten
from nnlab.presets import get_preset
from nnlab.train import TrainConfig, train

EVAL_ROWS = 256


def nnlab_epoch_seconds(config: TrainConfig, data: Dataset) -> float:
    """Seconds of one epoch of train() (evaluations on EVAL_ROWS rows only)."""
    small = Dataset(data.name, data.train, Split(data.val.x[:EVAL_ROWS], data.val.y[:EVAL_ROWS]),
                    Split(data.test.x[:EVAL_ROWS], data.test.y[:EVAL_ROWS]), data.n_classes,
                    data.image_shape)
    run = train(config.replace(epochs=1, n_evals=2), small)
    return run.curve["seconds"].iloc[-1] - run.curve["seconds"].iloc[0]


def torch_model(model: CNN):
    """The same layers in torch (default init: only the architecture matters here)."""
    import torch

    layers = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            layers.append(torch.nn.Conv2d(layer.in_shape[0], layer.n_filters, layer.kernel_size,
                                          layer.stride, layer.padding))
        elif isinstance(layer, MaxPool2D):
            layers.append(torch.nn.MaxPool2d(layer.size))
        elif isinstance(layer, ReLU):
            layers.append(torch.nn.ReLU())
        elif isinstance(layer, Flatten):
            layers.append(torch.nn.Flatten())
        elif isinstance(layer, Dense):
            layers.append(torch.nn.Linear(*layer.params["W"].shape))
        elif isinstance(layer, Dropout):
            layers.append(torch.nn.Dropout(layer.rate))
        else:
            raise SystemExit(f"no torch counterpart for {layer.name}")
    return torch.nn.Sequential(*layers)


class TorchEpoch:
    """One epoch of an idiomatic torch training loop on the same data and network."""

    def __init__(self, config: TrainConfig, data: Dataset) -> None:
        import torch

        self.torch = torch
        model = CNN(config.layers, data.image_shape, data.n_classes, activation=config.activation)
        self.model = torch_model(model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.eta)
        self.x = torch.from_numpy(data.train.features(np.float32)).reshape(-1, *data.image_shape)
        self.y = torch.from_numpy(np.asarray(data.train.y, dtype=np.int64))
        self.batch_size = config.batch_size
        self.generator = torch.Generator().manual_seed(0)

    def seconds(self) -> float:
        torch, batch = self.torch, self.batch_size
        started = time.perf_counter()
        order = torch.randperm(len(self.y), generator=self.generator)
        self.model.train()
        for k in range(len(self.y) // batch):
            rows = order[k * batch:(k + 1) * batch]
            self.optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(self.model(self.x[rows]), self.y[rows])
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="epochs per library")
    parser.add_argument("--layers", help="layer spec (default: the cnn preset's)")
    parser.add_argument("--batch-size", type=int, help="default: the cnn preset's")
    args = parser.parse_args()

    import torch

    config = get_preset("cnn")
    if args.layers:
        config = config.replace(layers=args.layers)
    if args.batch_size:
        config = config.replace(batch_size=args.batch_size)
    torch.set_num_threads(args.threads)
    data = load_mnist()
    print("\n".join(environment(args.threads)))
    print(f"network: {config.layers} ({config.activation}), Adam, batch {config.batch_size}, "
          f"{len(data.train) // config.batch_size} steps per epoch\n")
    theirs = TorchEpoch(config, data)
    times: dict[str, list[float]] = {"nnlab": [], "torch": []}
    with threadpool_limits(args.threads):
        for _ in range(args.repeats):
            times["nnlab"].append(nnlab_epoch_seconds(config, data))
            times["torch"].append(theirs.seconds())
            print(f"  epoch: nnlab {times['nnlab'][-1]:.1f} s, torch {times['torch'][-1]:.1f} s",
                  flush=True)
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    print("\n| threads | nnlab s/epoch (best / median) | torch s/epoch (best / median) "
          "| nnlab / torch (best) | target |")
    print("|---|---|---|---|---|")
    print(f"| {args.threads} | {best['nnlab']:.1f} / {median['nnlab']:.1f} | "
          f"{best['torch']:.1f} / {median['torch']:.1f} | "
          f"{best['nnlab'] / best['torch']:.2f}x | <= 1.5x |")


if __name__ == "__main__":
    main()
