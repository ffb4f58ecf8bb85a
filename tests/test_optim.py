"""Each transform against a step computed by hand on a tiny problem."""

import math

import numpy as np
import pytest

from nnlab import optim


def tree(W, b):
    return [{"W": np.array(W, dtype=np.float64), "b": np.array(b, dtype=np.float64)}]


def run(transform, grads_per_step, params=None):
    """Apply `transform` to a sequence of gradient trees; return the list of updates."""
    params = params if params is not None else tree([[1.0, -2.0]], [0.5])
    state = transform.init(params)
    outputs = []
    for step, grads in enumerate(grads_per_step):
        updates, state = transform.update(optim.copy_tree(grads), state, params, step)
        outputs.append(optim.copy_tree(updates))
    return outputs


def assert_tree_close(actual, expected):
    for a, e in zip(optim.leaves(actual), optim.leaves(expected), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-15)


G = tree([[0.5, -1.0]], [2.0])


def test_sgd_is_minus_eta_times_gradient():
    (u,) = run(optim.sgd(0.1), [G])
    assert_tree_close(u, tree([[-0.05, 0.1]], [-0.2]))


def test_momentum_accumulates_velocity():
    g = tree([[1.0, 2.0]], [-1.0])
    u1, u2 = run(optim.momentum(0.1, decay=0.9), [g, g])
    assert_tree_close(u1, tree([[-0.1, -0.2]], [0.1]))
    # v2 = 0.9 * g + g = 1.9 g
    assert_tree_close(u2, tree([[-0.19, -0.38]], [0.19]))


def test_nesterov_looks_ahead():
    g = tree([[1.0, 2.0]], [-1.0])
    u1, u2 = run(optim.momentum(0.1, decay=0.9, nesterov=True), [g, g])
    # step 1: v = g, update = -(g + 0.9 v) * 0.1 = -0.19 g
    assert_tree_close(u1, tree([[-0.19, -0.38]], [0.19]))
    # step 2: v = 1.9 g, update = -(g + 0.9 * 1.9 g) * 0.1 = -0.271 g
    assert_tree_close(u2, tree([[-0.271, -0.542]], [0.271]))


def test_rmsprop_divides_by_root_mean_square():
    g = tree([[2.0, -1.0]], [0.0])
    eps = 1e-8
    u1, u2 = run(optim.rmsprop(0.01, decay=0.9, eps=eps), [g, g])
    nu1 = [0.1 * 4.0, 0.1 * 1.0]
    assert_tree_close(u1, tree([[-0.01 * 2.0 / (math.sqrt(nu1[0]) + eps),
                                 0.01 * 1.0 / (math.sqrt(nu1[1]) + eps)]], [0.0]))
    nu2 = [0.9 * nu1[0] + 0.1 * 4.0, 0.9 * nu1[1] + 0.1 * 1.0]
    assert_tree_close(u2, tree([[-0.01 * 2.0 / (math.sqrt(nu2[0]) + eps),
                                 0.01 * 1.0 / (math.sqrt(nu2[1]) + eps)]], [0.0]))


def test_adam_bias_corrected_moments():
    eta, b1, b2, eps = 0.001, 0.9, 0.999, 1e-8
    g1, g2 = tree([[1.0, -4.0]], [0.25]), tree([[3.0, 2.0]], [0.25])
    u1, u2 = run(optim.adam(eta, b1, b2, eps), [g1, g2])

    def by_hand(first, second):
        mu = (1 - b1) * first
        nu = (1 - b2) * first**2
        mu = b1 * mu + (1 - b1) * second
        nu = b2 * nu + (1 - b2) * second**2
        mu_hat, nu_hat = mu / (1 - b1**2), nu / (1 - b2**2)
        return -eta * mu_hat / (math.sqrt(nu_hat) + eps)

    # the first step is -eta * sign(g) up to eps
    assert_tree_close(u1, tree([[-eta * 1 / (1 + eps), eta * 4 / (4 + eps)]],
                               [-eta * 0.25 / (0.25 + eps)]))
    assert_tree_close(u2, tree([[by_hand(1.0, 3.0), by_hand(-4.0, 2.0)]], [by_hand(0.25, 0.25)]))


@pytest.mark.parametrize("make", [
    lambda eta: optim.scale_by_adam(0.9, 0.99, 1e-8, eta=eta),
    lambda eta: optim.trace(0.9, eta=eta),
    lambda eta: optim.trace(0.9, nesterov=True, eta=eta),
])
def test_a_folded_learning_rate_equals_chaining_it(make):
    """Adam's and momentum's eta argument == chaining scale_by_learning_rate(eta), with a
    schedule, over steps of random gradients."""
    schedule = optim.InverseTime(0.3, decay=0.5)
    draws = [np.random.default_rng(step).normal(size=3) for step in range(4)]
    grads = [tree([w[:2]], w[2:]) for w in draws]
    unfolded = optim.chain(make(None), optim.scale_by_learning_rate(schedule))
    for folded, chained in zip(run(make(schedule), grads), run(unfolded, grads), strict=True):
        assert_tree_close(folded, chained)


def test_weight_decay_adds_l2_gradient_to_weights_only():
    params = tree([[1.0, -2.0]], [0.5])
    (u,) = run(optim.add_decayed_weights(0.1), [G], params)
    assert_tree_close(u, tree([[0.5 + 0.1, -1.0 - 0.2]], [2.0]))


def test_l1_adds_sign_of_weights_only():
    params = tree([[1.0, -2.0, 0.0]], [0.5])
    g = tree([[0.0, 0.0, 0.0]], [1.0])
    (u,) = run(optim.add_l1(0.01), [g], params)
    assert_tree_close(u, tree([[0.01, -0.01, 0.0]], [1.0]))


def test_clip_by_global_norm():
    g = tree([[3.0, 0.0]], [4.0])  # global norm 5
    (clipped,) = run(optim.clip_by_global_norm(1.0), [g])
    assert_tree_close(clipped, tree([[0.6, 0.0]], [0.8]))
    (unchanged,) = run(optim.clip_by_global_norm(10.0), [g])
    assert_tree_close(unchanged, g)


def test_chain_order_matters():
    g = tree([[3.0, 0.0]], [4.0])
    (clip_first,) = run(optim.chain(optim.clip_by_global_norm(1.0),
                                    optim.scale_by_learning_rate(10.0)), [g])
    (scale_first,) = run(optim.chain(optim.scale_by_learning_rate(10.0),
                                     optim.clip_by_global_norm(1.0)), [g])
    assert_tree_close(clip_first, tree([[-6.0, 0.0]], [-8.0]))
    assert_tree_close(scale_first, tree([[-0.6, 0.0]], [-0.8]))


def test_weight_decay_before_adam_is_not_decoupled():
    params = tree([[10.0]], [0.0])
    g = tree([[0.0]], [0.0])
    (before,) = run(optim.chain(optim.add_decayed_weights(0.1), optim.adam(0.01)), [g], params)
    (after,) = run(optim.chain(optim.adam(0.01), optim.add_decayed_weights(0.1)), [g], params)
    # before Adam the decay term is normalised to a sign step; after, it is added as is
    np.testing.assert_allclose(before[0]["W"], [[-0.01]], rtol=1e-6)
    np.testing.assert_allclose(after[0]["W"], [[1.0]], rtol=1e-12)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (optim.Constant(0.5), {0: 0.5, 1000: 0.5}),
        (optim.StepDecay(1.0, 0.5, 10), {0: 1.0, 9: 1.0, 10: 0.5, 25: 0.25}),
        (optim.Cosine(1.0, 100, 0.1), {0: 1.0, 50: 0.55, 100: 0.1, 200: 0.1}),
        (optim.InverseTime(1.0, 0.5), {0: 1.0, 2: 0.5, 6: 0.25}),
    ],
)
def test_schedules(schedule, expected):
    for step, eta in expected.items():
        assert schedule(step) == pytest.approx(eta, rel=1e-12)


def test_schedule_drives_the_learning_rate():
    g = tree([[1.0]], [1.0])
    updates = run(optim.sgd(optim.StepDecay(1.0, 0.1, 2)), [g] * 3)
    assert [u[0]["W"][0, 0] for u in updates] == pytest.approx([-1.0, -1.0, -0.1])


def test_noise_std_is_annealed():
    assert optim.noise_std(0.01, 0.55, 0) == pytest.approx(0.1)
    assert optim.noise_std(0.01, 0.55, 9) == pytest.approx(math.sqrt(0.01 / 10**0.55))


def test_gradient_noise_has_the_annealed_variance():
    params = [{"W": np.zeros((200, 250)), "b": np.zeros(250)}]
    zeros = optim.copy_tree(params)
    transform = optim.add_noise(0.3, gamma=0.55, seed=1)
    state = transform.init(params)
    for step in (0, 99):
        updates, state = transform.update(optim.copy_tree(zeros), state, params, step)
        draws = updates[0]["W"]
        sigma = math.sqrt(0.3 / (1 + step) ** 0.55)
        # 50k draws: the sample std is within ~1% of sigma
        assert draws.std() == pytest.approx(sigma, rel=0.02)
        assert abs(draws.mean()) < 4 * sigma / math.sqrt(draws.size)


def test_noise_comes_from_its_own_seed():
    params = tree([[0.0, 0.0, 0.0]], [0.0])
    g = tree([[1.0, 2.0, 3.0]], [4.0])
    a = run(optim.add_noise(0.1, seed=3), [g, g], params)
    b = run(optim.add_noise(0.1, seed=3), [g, g], params)
    c = run(optim.add_noise(0.1, seed=4), [g, g], params)
    for ua, ub in zip(a, b, strict=True):
        assert_tree_close(ua, ub)
    assert not np.allclose(a[0][0]["W"], c[0][0]["W"])
    # a second step draws fresh noise
    assert not np.allclose(a[0][0]["W"] - g[0]["W"], a[1][0]["W"] - g[0]["W"])


def test_update_does_not_write_params_and_keeps_float32():
    params = [{"W": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}]
    grads = [{"W": np.full((3, 2), 0.5, np.float32), "b": np.ones(2, np.float32)}]
    transform = optim.chain(optim.add_decayed_weights(0.1), optim.add_l1(0.1),
                            optim.clip_by_global_norm(1.0), optim.add_noise(0.01, seed=0),
                            optim.adam(0.1), optim.add_noise(0.01, seed=1))
    state = transform.init(params)
    before = optim.copy_tree(params)
    for step in range(3):
        updates, state = transform.update(optim.copy_tree(grads), state, params, step)
    assert_tree_close(params, before)
    assert all(u.dtype == np.float32 for u in optim.leaves(updates))
    optim.apply_updates(params, updates)
    np.testing.assert_allclose(params[0]["W"], before[0]["W"] + updates[0]["W"])


def test_global_norm():
    assert optim.global_norm(tree([[3.0, 0.0]], [4.0])) == pytest.approx(5.0)


@pytest.mark.parametrize("transform, moment", [
    (optim.adam(1e-3), lambda state: state.mu),
    (optim.momentum(0.1, decay=0.9), lambda state: state.velocity),
    (optim.momentum(0.1, decay=0.9, nesterov=True), lambda state: state.velocity),
    (optim.rmsprop(0.01, decay=0.9), lambda state: state.states[0].nu),
])
def test_decaying_moments_never_become_subnormal(transform, moment):
    # one gradient, then zeros: unflushed, a float32 moment of 1e-3 decaying by 0.9 per
    # step is subnormal from step ~765 to ~910
    params = [{"W": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}]
    state = transform.init(params)
    tiny = np.finfo(np.float32).tiny
    for step in range(1500):
        grads = [{k: np.full_like(v, 1e-3 if step == 0 else 0.0) for k, v in params[0].items()}]
        updates, state = transform.update(grads, state, params, step)
        for array in moment(state) + optim.leaves(updates):
            assert not np.any((array != 0) & (np.abs(array) < tiny)), f"subnormal at {step}"
    assert all(np.all(array == 0) for array in moment(state))


def test_flush_zeroes_only_what_could_become_subnormal_before_the_next_flush():
    decay = 0.9
    limit = np.finfo(np.float32).tiny / decay**optim.FLUSH_EVERY
    moment = np.array([limit * 0.99, -limit * 0.99, limit * 1.01, 1.0], np.float32)
    optim.flush_before_subnormal([moment], decay, step=optim.FLUSH_EVERY + 1)
    assert moment[0] != 0  # not a flush step
    optim.flush_before_subnormal([moment], decay, step=2 * optim.FLUSH_EVERY)
    np.testing.assert_array_equal(moment, np.array([0, 0, limit * 1.01, 1.0], np.float32))
    # what survives stays normal until the next flush
    assert moment[2] * np.float32(decay) ** optim.FLUSH_EVERY >= np.finfo(np.float32).tiny
