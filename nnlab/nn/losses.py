"""Output layers fused with their losses, acting on the logits z of the last Dense layer.

Outputs: softmax (over classes) or sigmoid (per class). Losses, per example, averaged
over the batch:
- cross_entropy: with softmax, -sum_k t_k log p_k (computed from log-sum-exp, never
  log(p)); with sigmoid, the per-class binary cross-entropy summed over classes,
  sum_k softplus(z_k) - t_k z_k.
- mse: 0.5 * sum_k (p_k - t_k)^2 (the 1/2 makes the gradient (p - t) * p', so classic
  per-sample recipes keep their learning rates).
Targets t = lo + (hi - lo) * onehot(y) for target_range = (lo, hi), default (0, 1);
(0.01, 0.99) is the classic MSE recipe, (eps/K, 1 - eps + eps/K) is label smoothing.
"""

from __future__ import annotations

import math

import numpy as np

from nnlab.errors import ConfigError, is_number
from nnlab.nn.activations import sigmoid

OUTPUTS = ("softmax", "sigmoid")
LOSSES = ("cross_entropy", "mse")


def check_head(output: object, loss: object, target_range: object, where: str) -> None:
    """Raise ConfigError naming the field of `where` that is not a valid output/loss."""
    if output not in OUTPUTS:
        raise ConfigError(f"{where}.output", f"one of {', '.join(OUTPUTS)}", output)
    if loss not in LOSSES:
        raise ConfigError(f"{where}.loss", f"one of {', '.join(LOSSES)}", loss)
    if not _is_target_range(target_range, loss):
        expected = "0 <= lo < hi <= 1 (cross-entropy targets are probabilities)" if (
            loss == "cross_entropy") else "lo < hi"
        raise ConfigError(f"{where}.target_range", f"a pair (lo, hi) with {expected}",
                          target_range)


def _is_target_range(value: object, loss: object) -> bool:
    """A pair of finite numbers lo < hi, within [0, 1] for cross-entropy."""
    if not (isinstance(value, tuple | list) and len(value) == 2
            and all(is_number(v) for v in value)):
        return False
    lo, hi = value
    return lo < hi and (loss != "cross_entropy" or (0 <= lo and hi <= 1))


def _softmax_by_columns(zt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the classes of zt: (..., K, batch), shifted in place by each column's
    max (no overflow). Returns p: (..., K, batch) and the sums of exp(shifted): (..., batch)."""
    zt -= zt.max(axis=-2, keepdims=True)
    p = np.exp(zt)
    sum_exp = p.sum(axis=-2)
    p /= sum_exp[..., None, :]
    return p, sum_exp


def _f64(values: np.ndarray) -> np.ndarray:
    """values (a sum's result, maybe a numpy scalar) as a float64 array of their shape."""
    return np.asarray(values, dtype=np.float64)


def _sum_at_labels(zt: np.ndarray, at_labels: np.ndarray) -> np.ndarray:
    """sum_j zt[..., y_j, j] over the batch, as float64 (...,), with `at_labels` = y *
    batch + arange(batch) the flat places of those values in a (K, batch) block. `take`
    gathers them contiguous, (..., batch): a sum along a contiguous axis is numpy's
    pairwise sum, which a run alone takes (gathered from a stack by fancy indexing, they
    would be laid out (batch, runs) and summed in another order)."""
    picked = zt.reshape(*zt.shape[:-2], -1).take(at_labels, axis=-1)
    return _f64(picked.sum(axis=-1))


class Head:
    """An output activation and a loss, with the loss gradient taken w.r.t. the logits."""

    def __init__(
        self,
        output: str = "softmax",
        loss: str = "cross_entropy",
        target_range: tuple[float, float] = (0.0, 1.0),
        where: str = "Head",
    ) -> None:
        check_head(output, loss, target_range, where)
        self.output = output
        self.loss = loss
        self.lo, self.hi = float(target_range[0]), float(target_range[1])

    def proba(self, z: np.ndarray) -> np.ndarray:
        """z: (batch, K) logits -> (batch, K) outputs (probabilities for softmax)."""
        if self.output == "sigmoid":
            return sigmoid(z)
        return np.ascontiguousarray(_softmax_by_columns(z.T.copy())[0].T)

    def loss_and_grad(
        self, z: np.ndarray, y: np.ndarray, with_grad: bool = True
    ) -> tuple[float, np.ndarray | None, np.ndarray]:
        """Batch-mean loss, its gradient w.r.t. z (batch, K) (None if not with_grad),
        and the outputs p (batch, K); with_grad, both are transposed views.

        The work is done on a (K, batch) copy of z: a sum or max over the K classes of
        every example is then a sum over rows, which numpy vectorises along the batch,
        where over a row of K = 10 it cannot (softmax cross-entropy for 100 examples:
        16 instead of 32 us; for 5000: 163 instead of 683 us)."""
        loss, grad, p = self._loss_and_grad(z, y, with_grad)
        return float(loss), grad, p

    def stacked_loss_and_grad(
        self, z: np.ndarray, y: np.ndarray, with_grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """`loss_and_grad` of runs that share the batch y (nnlab.nn.stacked): z, the
        gradient and p are (runs, batch, K), the losses (runs,) float64; each run's values
        those it gets alone."""
        return self._loss_and_grad(z, y, with_grad)

    def _loss_and_grad(
        self, z: np.ndarray, y: np.ndarray, with_grad: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Both of the above: z (..., batch, K), losses float64 of shape (...)."""
        batch, n_classes = z.shape[-2:]
        # the flat places of (y_j, j) in a (K, batch) block (y may be uint8 labels)
        at_labels = np.asarray(y, dtype=np.intp) * batch + np.arange(batch)
        lo, span = self.lo, self.hi - self.lo
        zt = z.swapaxes(-1, -2).copy()  # (..., K, batch)
        if self.output == "softmax":
            p, sum_exp = _softmax_by_columns(zt)  # zt now holds the shifted logits
            if self.loss == "cross_entropy":
                # -log p_k = log_sum_exp - shifted_k
                sum_log_sum_exp = _f64(np.log(sum_exp).sum(axis=-1))  # over the batch
                total = span * (sum_log_sum_exp - _sum_at_labels(zt, at_labels))
                if lo:
                    total += lo * (n_classes * sum_log_sum_exp - _f64(zt.sum(axis=(-2, -1))))
                loss = total / batch
        else:
            p = sigmoid(zt, size=n_classes * batch)
            if self.loss == "cross_entropy":
                # softplus(z) - t z, with softplus(z) = max(z, 0) + log1p(exp(-|z|))
                softplus = np.maximum(zt, 0) + np.log1p(np.exp(-np.abs(zt)))
                total = _f64(softplus.sum(axis=(-2, -1))) - span * _sum_at_labels(zt, at_labels)
                if lo:
                    total -= lo * _f64(zt.sum(axis=(-2, -1)))
                loss = total / batch
        # diff = p - t
        diff = p - z.dtype.type(lo)
        if diff.ndim > 2:  # every run's labels in the flat stack (1-D indexing is fastest)
            at_labels = (np.arange(0, diff.size, n_classes * batch)[:, None] + at_labels).ravel()
        diff.reshape(-1)[at_labels] -= span  # a view: diff is a new array
        if self.loss == "mse":
            # einsum of each run on its own: over a stack it sums large arrays otherwise
            squares = np.array([np.einsum("ij,ij->", d, d) for d in diff.reshape(
                -1, n_classes, batch)]).reshape(diff.shape[:-2])
            loss = _f64(0.5 * squares / batch)
        if not with_grad:
            return loss, None, np.ascontiguousarray(p.swapaxes(-1, -2))
        if self.loss == "cross_entropy":
            grad = diff
            if self.output == "softmax" and n_classes * lo + span != 1.0:
                # sum_k t_k != 1: d/dz = p * sum_k t_k - t
                grad += p * z.dtype.type(n_classes * lo + span - 1.0)
        elif self.output == "sigmoid":
            grad = diff * p
            grad *= 1 - p
        else:
            # softmax Jacobian: dL/dz_j = p_j (diff_j - sum_k diff_k p_k)
            grad = diff - (diff * p).sum(axis=-2)[..., None, :]
            grad *= p
        grad /= z.dtype.type(batch)
        return loss, grad.swapaxes(-1, -2), p.swapaxes(-1, -2)

    def loss_and_grad_one(self, z: np.ndarray, label: int, p: np.ndarray,
                          grad: np.ndarray) -> float:
        """One example, for the batch-1 fast path: the same values as loss_and_grad on
        z[None], with few numpy calls. z: (K,) logits; writes the outputs into p (K,) and
        dL/dz into grad (K,); returns the loss."""
        lo, span = self.lo, self.hi - self.lo
        if self.output == "softmax":
            np.subtract(z, z.max(), out=grad)  # grad holds the shifted logits for now
            np.exp(grad, out=p)
            sum_exp = float(p.sum())
            p /= z.dtype.type(sum_exp)
            if self.loss == "cross_entropy":
                log_sum_exp = math.log(sum_exp)
                loss = span * (log_sum_exp - float(grad[label]))
                if lo:
                    loss += lo * (len(z) * log_sum_exp - float(grad.sum()))
                np.multiply(p, z.dtype.type(len(z) * lo + span), out=grad)
                grad -= z.dtype.type(lo)
                grad[label] -= span
                return loss
        else:
            sigmoid(z, out=p)
            if self.loss == "cross_entropy":
                np.abs(z, out=grad)
                np.negative(grad, out=grad)
                np.exp(grad, out=grad)
                np.log1p(grad, out=grad)
                loss = float(grad.sum()) + float(np.maximum(z, 0).sum())
                loss -= span * float(z[label]) + lo * float(z.sum())
                np.subtract(p, z.dtype.type(lo), out=grad)
                grad[label] -= span
                return loss
        diff = p - z.dtype.type(lo)
        diff[label] -= span
        loss = 0.5 * float(np.dot(diff, diff))
        if self.output == "sigmoid":
            np.subtract(1, p, out=grad)
            grad *= p
            grad *= diff
        else:
            np.subtract(diff, np.dot(diff, p), out=grad)
            grad *= p
        return loss
