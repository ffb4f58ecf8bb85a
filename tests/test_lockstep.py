"""Lockstep groups against separate runs: every Run bit for bit, on MNIST's real shapes and
an entry point's data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from nnlab.datasets import Dataset, Split
from nnlab.errors import ConfigError
from nnlab.lockstep import group_key, train_group
from nnlab.nn import MLP
from nnlab.nn import stacked as stacked_module
from nnlab.nn.stacked import StackedMLP, wide_product_exact
from nnlab.run import Run
from nnlab.train import REFERENCE_ROWS, TrainConfig, get_preset, train
from tests.data_entry import blobs_dataset

BASE = get_preset("seed-000").replace(batch_size=100, n_steps=120, eval_steps=[0, 7, 30, 120])


@pytest.fixture(scope="module")
def data(mnist: Dataset) -> Dataset:
    """MNIST with 1000 val and test examples (the whole training split: real batches)."""
    return Dataset("mnist-small", mnist.train, Split(mnist.val.x[:1000], mnist.val.y[:1000]),
                   Split(mnist.test.x[:1000], mnist.test.y[:1000]))


def assert_same_run(grouped: Run, alone: Run) -> None:
    """Everything a run records, bit for bit, but wall times."""
    pd.testing.assert_frame_equal(grouped.curve.drop(columns="seconds"),
                                  alone.curve.drop(columns="seconds"), check_exact=True)
    assert (grouped.status, grouped.note, grouped.seeds) == (alone.status, alone.note,
                                                             alone.seeds)
    assert ({k: v for k, v in grouped.metrics.items() if k != "seconds"}
            == {k: v for k, v in alone.metrics.items() if k != "seconds"})
    np.testing.assert_array_equal(grouped.test_proba, alone.test_proba)
    pd.testing.assert_frame_equal(grouped.compact_predictions(), alone.compact_predictions())
    for mine, theirs in zip(grouped.model.params, alone.model.params, strict=True):
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])


def check_group(configs: list[TrainConfig], data: Dataset) -> list[Run]:
    """Train `configs` as one group and each alone (one BLAS thread, as a study worker);
    assert the runs equal; return the group's."""
    assert len({group_key(config) for config in configs}) == 1
    grouped = train_group(configs, data)
    with threadpool_limits(limits=1):
        for config, run in zip(configs, grouped, strict=True):
            assert_same_run(run, train(config, data))
    return grouped


def test_an_eta_sweep_with_both_kinds_of_divergence(data):
    runs = check_group([*(BASE.replace(eta=eta) for eta in (0.5, 2.0, 64.0, 300.0)),
                        BASE.replace(eta=1e36, diverge_factor=1e300)], data)
    assert [run.status for run in runs] == ["ok", "ok", "diverged", "diverged", "diverged"]
    # by the explosion rule at an evaluation step (30) and between two (3), and by a loss
    # that stopped being finite at the first step of a segment of two (steps 7..8): each
    # drops out, the others go on
    assert runs[2].note.startswith("mean train loss") and runs[2].metrics["n_steps"] == 30
    assert runs[3].note.startswith("mean train loss") and runs[3].metrics["n_steps"] == 3
    assert runs[4].note == "train loss inf at step 8"


@pytest.mark.parametrize("fields", [
    {"activation": "tanh"},
    {"activation": "relu", "output": "sigmoid", "loss": "mse"},
    {"activation": "leaky_relu", "loss": "mse", "target_range": [0.01, 0.99]},
    {"activation": "elu", "target_range": [0.01, 0.91]},
    {"activation": "sigmoid", "output": "sigmoid", "target_range": [0.05, 0.95]},
])
def test_activations_and_heads(data, fields):
    check_group([BASE.replace(eta=eta, **fields) for eta in (0.1, 0.5)], data)


@pytest.mark.parametrize("sizes", [[784, 10], [784, 100, 10], [784, 32, 16, 16, 10]])
def test_depths(data, sizes):
    check_group([BASE.replace(sizes=sizes, eta=eta) for eta in (0.3, 1.0)], data)


def test_noise_arms_of_one_seed_and_another_noise_seed(data):
    """Gradient and weight noise of one noise seed share their draws; a run with another
    noise seed draws its own."""
    arms = [BASE.replace(noise=noise, noise_eta=1e-3, seed=3) for noise in ("none", "grad",
                                                                         "weight")]
    check_group([*arms, BASE.replace(noise="grad", noise_eta=1e-4, seed=3, noise_seed=9),
                 BASE.replace(noise="weight", noise_eta=1e-5, noise_gamma=0.0, seed=3)],
                data)


def test_init_seeds_with_one_order(data):
    check_group([BASE.replace(seed=seed, order_seed=1000) for seed in range(4)], data)


@pytest.mark.parametrize(("configs", "alike"), [
    ([BASE.replace(eta=eta) for eta in (0.5, 2.0, 8.0)], True),
    ([BASE.replace(seed=seed, order_seed=1000) for seed in range(3)], False),
])
def test_runs_alike_are_evaluated_by_one_pass(data, monkeypatch, configs, alike):
    """Runs of one init seed have the same parameters before their first step: the group
    evaluates them there by the first run's model alone (their initial loss on the first
    REFERENCE_ROWS training rows, val and test, 1000 rows each: one chunk of `evaluate`),
    and by stacked passes once they differ; runs of different init seeds by stacked passes
    from the start: the initial loss, val's loss and outputs, test's outputs alone (its
    loss is not recorded)."""
    passes: list[tuple[str, int, int]] = []  # (kind, runs, rows)
    own_pass, stacked_pass, stacked_outputs = (MLP.loss_and_proba, StackedMLP.loss_and_proba,
                                               StackedMLP.proba)

    def counted_own(model: MLP, x: np.ndarray, y: np.ndarray):
        passes.append(("own", 1, len(x)))
        return own_pass(model, x, y)

    def counted(stack: StackedMLP, x: np.ndarray, y: np.ndarray):
        passes.append(("loss", stack.k, len(x)))
        return stacked_pass(stack, x, y)

    def counted_outputs(stack: StackedMLP, x: np.ndarray):
        passes.append(("outputs", stack.k, len(x)))
        return stacked_outputs(stack, x)

    monkeypatch.setattr(MLP, "loss_and_proba", counted_own)
    monkeypatch.setattr(StackedMLP, "loss_and_proba", counted)
    monkeypatch.setattr(StackedMLP, "proba", counted_outputs)
    train_group(configs, data)
    evaluations = [("loss", 3, 1000), ("outputs", 3, 1000)] * 3  # steps 7, 30 and 120
    if alike:  # before the first step: one run's initial loss and its val evaluation
        assert passes == [("own", 1, REFERENCE_ROWS), ("own", 1, 1000), *evaluations]
    else:
        assert passes == [("loss", 3, REFERENCE_ROWS), *evaluations[:2], *evaluations]
    monkeypatch.undo()
    check_group(configs, data)  # the same runs as alone


@pytest.mark.parametrize("fields", [
    {"activation": "sigmoid"},
    {"activation": "relu", "output": "sigmoid", "loss": "mse"},
    {"activation": "tanh", "output": "sigmoid", "target_range": [0.05, 0.95]},
])
def test_stacked_outputs_are_each_runs_own(fields):
    """`StackedMLP.proba` gives each run's `predict_proba` bit for bit, and the outputs of
    the stack's `loss_and_proba`."""
    models = [MLP([12, 8, 5, 3], seed=seed, **fields) for seed in range(3)]
    stack = StackedMLP(models)
    x = np.random.default_rng(0).standard_normal((1500, 12)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 1500)
    outputs = stack.proba(x)
    np.testing.assert_array_equal(outputs, stack.loss_and_proba(x, y)[1])
    for model, own in zip(models, outputs, strict=True):
        assert own.tobytes() == model.predict_proba(x).tobytes()


def test_stacked_runs_alike_bit_for_bit():
    models = [MLP([12, 8, 5, 3], seed=1) for _ in range(3)]
    stack = StackedMLP(models)
    assert stack.alike()
    for layer in range(3):  # the biases start at 0.0
        stack.member_params(2)[layer]["b"][-1] = -0.0  # equal to 0.0, not the same bits
        assert not stack.alike()
        stack.copy_from(2, models[2])
        assert stack.alike()
    stack.member_params(0)[1]["W"][...] = np.nan  # the same NaN bits in every run
    stack.member_params(1)[1]["W"][...] = np.nan
    stack.member_params(2)[1]["W"][...] = np.nan
    assert stack.alike()


@pytest.mark.parametrize("fields", [
    {"optimizer": "momentum", "eta": 0.05},
    {"optimizer": "nesterov", "eta": 0.05, "noise": "grad", "noise_eta": 1e-4},
    {"optimizer": "rmsprop", "eta": 1e-3},
    {"optimizer": "adam", "eta": 1e-3, "noise": "weight", "noise_eta": 1e-6},
    {"optimizer": "sgd", "eta": 0.5, "weight_decay": 1e-3, "l1": 1e-5, "clip_norm": 0.5},
])
def test_optimisers_on_their_own_chains(data, fields):
    check_group([BASE.replace(**fields), BASE.replace(**{**fields, "eta": fields["eta"] * 2})],
                data)


@pytest.mark.parametrize("fields", [
    {"batch_size": 25, "schedule": "cosine"},  # small products: SkylakeX BLAS may round a
    {"batch_size": 500, "schedule": "step", "decay_every": 50},  # narrow one differently
    {"dtype": "float64", "schedule": "inv_t", "inv_t_decay": 0.1},
    {"epochs": 0.05, "eval_steps": None, "n_evals": 5},
])
def test_batches_lengths_schedules_dtypes(data, fields):
    check_group([BASE.replace(eta=eta, **fields) for eta in (0.5, 2.0)], data)


def test_each_run_sees_its_own_evaluations_and_one_stopped_by_them_drops_out(data):
    """on_eval as a study's live values and pruner use it: run 1 is stopped at step 30 (as
    train() stops it there alone), the others go on; each callback sees its own rows."""
    configs = [BASE.replace(eta=eta) for eta in (0.5, 1.0, 2.0)]
    rows: dict[str, list[dict]] = {}

    def watch(name: str, stop_at: int | None = None):
        def on_eval(row: dict, last: bool) -> bool:
            rows.setdefault(name, []).append({k: v for k, v in row.items() if k != "seconds"})
            return row["step"] != stop_at
        return on_eval

    grouped = train_group(configs, data, [watch("0"), watch("1", stop_at=30), None])
    with threadpool_limits(limits=1):
        alone = [train(configs[0], data, watch("0 alone")),
                 train(configs[1], data, watch("1 alone", stop_at=30)), train(configs[2], data)]
    for mine, theirs in zip(grouped, alone, strict=True):
        assert_same_run(mine, theirs)
    assert [run.status for run in grouped] == ["ok", "stopped", "ok"]
    assert grouped[1].metrics["n_steps"] == 30
    assert rows["0"] == rows["0 alone"] and [row["step"] for row in rows["0"]] == [0, 7, 30, 120]
    assert rows["1"] == rows["1 alone"] and [row["step"] for row in rows["1"]] == [0, 7, 30]
    with pytest.raises(ConfigError, match=r"^train_group.on_evals: expected one on_eval per "
                       r"config \(3\), got 1$"):
        train_group(configs, data, [None])


def test_data_of_other_shapes():
    """An entry point's data set: 12 real-valued features, 3 classes, 400 training rows."""
    check_group([BASE.replace(sizes=[12, 8, 3], batch_size=40, eta=eta) for eta in (0.1, 1.0)],
                blobs_dataset())


def test_full_batch(data):
    small = Dataset("first-2000", Split(data.train.x[:2000], data.train.y[:2000]), data.val,
                    data.test)
    check_group([BASE.replace(batch_size=None, n_steps=20, eval_steps=[0, 20], eta=eta)
                 for eta in (1.0, 3.0)], small)


def test_narrow_products_where_the_wide_ones_would_round_differently(data, monkeypatch):
    monkeypatch.setattr(stacked_module, "wide_product_exact", lambda *args, **kwargs: False)
    check_group([BASE.replace(eta=eta) for eta in (0.5, 2.0)], data)


def test_the_probe_of_wide_products():
    """The probe's answer is the shape's, whatever the values: on other random data each
    block of rows of the wide product equals its narrow product exactly where the probe
    says so (on OpenBLAS's Haswell kernels every block of 36 rows does, 36 being three of
    its 12-wide panels, and no block of 32 rows, which splits panels; batch 1 takes another
    path). One block is always exact."""
    rng = np.random.default_rng(7)
    with threadpool_limits(limits=1):
        for rows, n_out, gradient, k in ((25, 36, False, 3), (100, 36, False, 11),
                                         (100, 36, True, 11), (1024, 36, False, 3),
                                         (100, 32, False, 3), (100, 32, True, 3),
                                         (1, 36, False, 3), (100, 36, False, 1)):
            x = rng.standard_normal((rows, 784)).astype(np.float32)
            operand = x if gradient else x.T
            wide = rng.standard_normal((k * n_out, len(operand))).astype(np.float32)
            product = wide @ operand
            exact = all(np.array_equal(product[i * n_out:(i + 1) * n_out],
                                       wide[i * n_out:(i + 1) * n_out] @ operand)
                        for i in range(k))
            assert wide_product_exact(rows, 784, n_out, k, np.float32, gradient) is exact
        assert wide_product_exact(100, 784, 36, 1, np.float32)


def test_stacked_members_are_views_and_copies_round_trip():
    models = [MLP([784, 36, 16, 10], seed=seed) for seed in range(3)]
    stack = StackedMLP(models)
    stack.member_params(1)[1]["W"][0, 0] = 7.0
    assert stack.rest[1, 0] == 7.0
    stack.member_params(2)[0]["b"][3] = 5.0  # the first layer's biases: W0's last column
    assert stack.W0[2 * 36 + 3, 784] == 5.0
    stack.member_params(0)[0]["W"][5, 3] = 6.0  # its weights: W^T, run by run
    assert stack.W0[3, 5] == 6.0
    stack.copy_to(1, models[0])
    assert models[0].params[1]["W"][0, 0] == 7.0
    stack.keep([2, 1])
    np.testing.assert_array_equal(stack.member_params(0)[0]["W"], models[2].params[0]["W"])
    assert stack.member_params(1)[1]["W"][0, 0] == 7.0
    with pytest.raises(ConfigError, match=r"^StackedMLP.models: expected MLPs of one "
                       r"architecture, head and dtype, got model 1 of sizes \[784, 32, 10\] "
                       r"\(model 0: \[784, 36, 10\]\)$"):
        StackedMLP([MLP([784, 36, 10]), MLP([784, 32, 10])])
    with pytest.raises(ConfigError, match=r"got model 2 of dtype float64 \(model 0: float32\); "
                       r"activations \['Tanh'\] \(model 0: \['Sigmoid'\]\)$"):
        StackedMLP([MLP([12, 8, 3]), MLP([12, 8, 3]),
                    MLP([12, 8, 3], activation="tanh", dtype="float64")])


@pytest.mark.parametrize("sizes", [[784, 36, 16, 10], [12, 8, 3], [784, 10]])
def test_scaling_each_runs_grads_by_its_factor(sizes):
    """scale_grads multiplies each run's rows of W0's grads (its units and their biases)
    by its run's factor, and each run's row of the later layers' grads."""
    rng = np.random.default_rng(0)
    stack = StackedMLP([MLP(sizes, seed=seed) for seed in range(11)])
    stack.grad_W0[...] = rng.standard_normal(stack.grad_W0.shape)
    stack.grad_rest[...] = rng.standard_normal(stack.grad_rest.shape)
    expected = [[{key: array * np.float32(-factor) for key, array in layer.items()}
                 for layer in stack.member_grads(i)] for i, factor in enumerate(range(11))]
    factors = stack.run_factors([-factor for factor in range(11)])
    assert factors.shape == (11, 1)
    stack.scale_grads(factors)
    for i in range(11):
        for mine, theirs in zip(stack.member_grads(i), expected[i], strict=True):
            for key in mine:
                np.testing.assert_array_equal(mine[key], theirs[key])


def test_group_keys():
    key = group_key(BASE)
    assert key is not None
    for same in ({"eta": 3.0}, {"noise": "grad"}, {"init_seed": 4}, {"noise_seed": 2},
                 {"schedule": "cosine"}, {"diverge_factor": 3.0}, {"init": "he"},
                 {"seed": 5, "order_seed": 0}):
        assert group_key(BASE.replace(**same)) == key, same
    for other in ({"seed": 1}, {"order_seed": 1}, {"batch_size": 50}, {"n_steps": 100},
                  {"eval_steps": [0, 120]}, {"sizes": [784, 32, 10]}, {"activation": "tanh"},
                  {"dtype": "float64"}, {"optimizer": "adam"}, {"weight_decay": 1e-4}):
        assert group_key(BASE.replace(**other)) != key, other
    assert group_key(BASE.replace(batch_size=1)) is None
    assert group_key(BASE.replace(model="cnn", layers="conv4k5-pool2-dense8")) is None
    assert group_key(BASE.replace(model="tests.data_entry:small_net")) is None  # a builder


def test_train_group_refuses_runs_of_different_groups(data):
    with pytest.raises(ConfigError, match=r"^train_group.configs: expected TrainConfigs that "
                       r"share one group_key .*, got 2 configs of 2 keys$"):
        train_group([BASE, BASE.replace(seed=1)], data)
    with pytest.raises(ConfigError, match=r"got 1 configs of 1 keys \(some do not train in "
                       r"lockstep\)$"):
        train_group([BASE.replace(batch_size=1)], data)
    with pytest.raises(ConfigError, match="got no configs$"):
        train_group([], data)


@pytest.mark.slow
def test_an_eta_vs_n_seed_as_one_group(mnist):
    """eta-vs-n's 11 learning rates of one seed, 3162 of its steps, on the whole data."""
    steps = [0, 32, 56, 100, 178, 316, 562, 1000, 1778, 3162]
    check_group([BASE.replace(n_steps=3162, eval_steps=steps, eta=eta, seed=4)
                 for eta in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)],
                mnist)
