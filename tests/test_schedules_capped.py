"""The capped 1/t schedule, eta(t) = min(eta, T / (t + 1)) with T = eta / inv_t_decay: its
values, its errors, a run with it against the step-by-step definition, lockstep groups
against separate runs, and its runs read at their evaluation steps as shorter runs."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from nnlab import optim
from nnlab.datasets import Dataset, Split
from nnlab.errors import ConfigError
from nnlab.study import StudySpec
from nnlab.study.lengths import prefix_lengths
from nnlab.train import TrainConfig, _Batches, get_preset, start_run, train
from tests.test_lockstep import check_group

BASE = get_preset("seed-000").replace(batch_size=100, n_steps=120, eval_steps=[0, 7, 30, 120])


@pytest.fixture(scope="module")
def data(mnist: Dataset) -> Dataset:
    """MNIST with 1000 val and test examples (the whole training split: real batches)."""
    return Dataset("mnist-small", mnist.train, Split(mnist.val.x[:1000], mnist.val.y[:1000]),
                   Split(mnist.test.x[:1000], mnist.test.y[:1000]))


def test_eta_up_to_the_knee_then_t_over_step():
    schedule = optim.CappedInverseTime(4.0, 0.5)  # T = 8: the knee after step 1
    assert [schedule(step) for step in range(6)] == pytest.approx(
        [4.0, 4.0, 8 / 3, 2.0, 1.6, 8 / 6], rel=1e-15)
    plateau = optim.CappedInverseTime(3.0, 3.0 / 7000)  # finding 1's numbers: knee at 2333
    assert plateau(2332) == 3.0 and plateau(2333) == pytest.approx(7000 / 2334, rel=1e-14)
    assert plateau(99_999) == pytest.approx(0.07, rel=1e-12)
    # inverse time with the same eta and decay: the same 1/t tail, but half eta at the knee
    smooth = optim.InverseTime(3.0, 3.0 / 7000)
    assert smooth(2333) == pytest.approx(plateau(2333) / 2, rel=1e-3)
    assert smooth(10**7) == pytest.approx(plateau(10**7), rel=1e-3)


def test_the_config_builds_it_and_refuses_a_zero_or_negative_decay():
    config = TrainConfig(schedule="capped_inv_t", eta=2.0, inv_t_decay=0.01)
    assert config.schedule == "capped_inv_t"
    with pytest.raises(ConfigError, match=r"^TrainConfig\.inv_t_decay: expected a positive "
                       r"number with schedule='capped_inv_t' .*, got 0"):
        TrainConfig(schedule="capped_inv_t", inv_t_decay=0)
    with pytest.raises(ConfigError, match=r"^TrainConfig\.inv_t_decay: expected a number "
                       r">= 0, got -0\.1"):
        TrainConfig(schedule="capped_inv_t", inv_t_decay=-0.1)
    with pytest.raises(ConfigError, match=r"^TrainConfig\.schedule: expected one of constant, "
                       r"step, cosine, inv_t, capped_inv_t, got 'capped'"):
        TrainConfig(schedule="capped")
    # inv_t keeps accepting a zero decay (a constant rate), as it always has
    assert TrainConfig(schedule="inv_t", inv_t_decay=0).inv_t_decay == 0.0


def test_a_run_equals_the_step_by_step_definition(data):
    """SGD with eta_t = min(eta, T / (t + 1)), written out step by step on the run's own
    initial weights and batches, gives the run's parameters bit for bit (inv_t_decay a
    power of 2, so T = eta / inv_t_decay and both forms of eta_t are exact quotients)."""
    eta, decay = 2.0, 1 / 32  # T = 64: eta for steps 0..31, then 64 / (t + 1)
    config = BASE.replace(schedule="capped_inv_t", eta=eta, inv_t_decay=decay)
    with threadpool_limits(limits=1):
        run = train(config, data)
        start = start_run(config, data)
        batches = _Batches(data.train, start.model.dtype, start.batch_size,
                           start.rngs["order"])
        for t in range(config.n_steps):
            x, y = batches.next()
            start.model.sgd_step(x, y, min(eta, (eta / decay) / (t + 1)))
    for mine, theirs in zip(run.model.params, start.model.params, strict=True):
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])
    lr = dict(zip(run.curve["step"], run.curve["lr"], strict=True))
    assert lr == {0: 2.0, 7: 2.0, 30: 2.0, 120: 64 / 121}


def test_lockstep_groups_it_with_other_schedules_bit_for_bit(data):
    check_group([BASE.replace(schedule="capped_inv_t", eta=3.0, inv_t_decay=3.0 / 50),
                 BASE.replace(schedule="capped_inv_t", eta=1.0, inv_t_decay=1.0 / 20),
                 BASE.replace(schedule="inv_t", eta=3.0, inv_t_decay=3.0 / 50),
                 BASE.replace(eta=0.5)], data)


def test_with_noise_and_its_own_chain_in_lockstep(data):
    fields = {"schedule": "capped_inv_t", "inv_t_decay": 0.05}
    check_group([BASE.replace(eta=2.0, noise="grad", noise_eta=1e-4, **fields),
                 BASE.replace(eta=1.0, **fields)], data)
    check_group([BASE.replace(optimizer="momentum", eta=0.2, **fields),
                 BASE.replace(optimizer="momentum", eta=0.1, **fields)], data)


def test_its_runs_are_read_at_their_evaluation_steps_as_shorter_runs(data):
    spec = StudySpec.from_dict({
        "study": {"name": "capped"}, "grid": {"eta": [1.0, 3.0]},
        "base": {"preset": "seed-000", "batch_size": 100, "n_steps": 120,
                 "eval_steps": [0, 30, 120], "schedule": "capped_inv_t",
                 "inv_t_decay": 0.02}})
    assert prefix_lengths(spec) == [30, 120]
    config = BASE.replace(schedule="capped_inv_t", eta=3.0, inv_t_decay=0.02)
    with threadpool_limits(limits=1):
        long = train(config, data)
        short = train(config.replace(n_steps=30, eval_steps=[0, 30]), data)
    at_30 = long.curve[long.curve["step"] == 30].iloc[0]
    for metric in ("val_acc", "test_acc", "val_loss"):
        assert at_30[metric] == short.metrics[metric], metric
