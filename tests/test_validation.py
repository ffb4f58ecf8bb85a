"""nnlab.validation: each constraint kind accepts its boundary values, rejects the values
just outside them, and the error names the field and the expected form."""

import math

import pytest

from nnlab.errors import ConfigError
from nnlab.study.data_spec import CONSTRAINTS as DATA_CONSTRAINTS
from nnlab.study.data_spec import data_spec
from nnlab.study.spec import STUDY_CONSTRAINTS, STUDY_KEYS, StudySpec
from nnlab.train_config import CONSTRAINTS, MAX_EPOCHS, MAX_STEPS, TrainConfig, field_names
from nnlab.validation import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    AnyOf,
    Boolean,
    InstanceOf,
    Integers,
    Interval,
    ListOf,
    OneOf,
    Optional,
    Satisfies,
    checked,
    checked_fields,
)

BELOW_0, ABOVE_0 = math.nextafter(0.0, -1.0), math.nextafter(0.0, 1.0)
BELOW_1, ABOVE_1 = math.nextafter(1.0, 0.0), math.nextafter(1.0, 2.0)


def rejected(constraint, value, field="f"):
    """The ConfigError `checked` raises for `value` (failing the test when it passes)."""
    with pytest.raises(ConfigError) as caught:
        checked(field, value, constraint)
    return caught.value


@pytest.mark.parametrize(("closed", "text", "low_in", "high_in"), [
    ("both", "a number in [0, 1]", True, True),
    ("left", "a number in [0, 1)", True, False),
    ("right", "a number in (0, 1]", False, True),
    ("neither", "a number in (0, 1)", False, False),
])
def test_an_interval_takes_its_closed_ends_and_nothing_past_them(closed, text, low_in,
                                                                 high_in):
    unit = Interval(0, 1, closed=closed)
    assert unit.description == text
    for value in (ABOVE_0, 0.5, BELOW_1):
        assert checked("f", value, unit) == value
    for end, inside in ((0, low_in), (1, high_in)):
        if inside:
            assert checked("f", end, unit) == end
        else:
            assert str(rejected(unit, end)) == f"f: expected {text}, got {end}"
    for outside in (BELOW_0, ABOVE_1):
        error = rejected(unit, outside)
        assert error.field == "f" and error.expected == text and error.got == outside


def test_a_half_bounded_interval_says_which_side():
    assert POSITIVE.description == "a positive number"
    assert checked("f", ABOVE_0, POSITIVE) == ABOVE_0
    assert rejected(POSITIVE, 0).expected == "a positive number"
    assert NON_NEGATIVE.description == "a number >= 0"
    assert checked("f", 0, NON_NEGATIVE) == 0.0
    rejected(NON_NEGATIVE, BELOW_0)
    above_one = Interval(1, closed="neither")
    assert above_one.description == "a number > 1"
    assert checked("f", ABOVE_1, above_one) == ABOVE_1
    rejected(above_one, 1)
    at_most = Interval(high=2.5, note=" (a ceiling)")
    assert at_most.description == "a number <= 2.5 (a ceiling)"
    assert checked("f", 2.5, at_most) == 2.5
    rejected(at_most, math.nextafter(2.5, 3))


@pytest.mark.parametrize("value", [True, math.nan, math.inf, -math.inf, "0.5", None, [0.5]])
def test_an_interval_takes_finite_numbers_only(value):
    assert rejected(Interval(), value).expected == "a finite number"


def test_an_interval_stores_a_float():
    stored = checked("f", 3, POSITIVE)
    assert stored == 3.0 and type(stored) is float


def test_integers_take_both_ends_and_reject_one_past_each():
    small = Integers(2, 5, note=" (a range)")
    assert small.description == "an integer in 2..5 (a range)"
    assert [checked("f", n, small) for n in (2, 3, 5)] == [2, 3, 5]
    for outside in (1, 6):
        assert str(rejected(small, outside)) == f"f: expected an integer in 2..5 (a range), " \
                                                f"got {outside}"
    assert POSITIVE_INT.description == "an integer >= 1"
    assert checked("f", 1, POSITIVE_INT) == 1
    rejected(POSITIVE_INT, 0)
    assert NON_NEGATIVE_INT.description == "an integer >= 0"
    assert checked("f", 0, NON_NEGATIVE_INT) == 0
    rejected(NON_NEGATIVE_INT, -1)
    assert Integers(high=3).description == "an integer <= 3"
    rejected(Integers(high=3), 4)


@pytest.mark.parametrize("value", [True, False, 2.0, "2", None])
def test_integers_are_python_ints_not_bools_or_floats(value):
    assert rejected(Integers(0, 5), value).got == value


def test_one_of_takes_exactly_its_strings():
    kind = OneOf(("sgd", "adam"))
    assert kind.description == "one of sgd, adam"
    assert checked("f", "adam", kind) == "adam"
    for value in ("Adam", "adam ", ["adam"], None, 1):
        assert str(rejected(kind, value)) == f"f: expected one of sgd, adam, got {value!r}"


def test_boolean_takes_true_and_false_not_numbers():
    assert checked("f", True, Boolean()) is True and checked("f", False, Boolean()) is False
    for value in (0, 1, "true", None):
        assert str(rejected(Boolean(), value)) == f"f: expected true or false, got {value!r}"


def test_a_list_takes_its_shortest_length_and_each_item_within_the_item_constraint():
    sizes = ListOf(POSITIVE_INT, min_length=2, note=" [in, out]")
    assert sizes.description == "a list of at least 2 integers >= 1 [in, out]"
    assert checked("f", (3, 1), sizes) == [3, 1]
    for value in ([3], [3, 0], [3, 1.0], "31", None, [3, True]):
        assert rejected(sizes, value).expected == sizes.description
    steps = ListOf(NON_NEGATIVE_INT)
    assert steps.description == "a list of integers >= 0"
    assert checked("f", [], steps) == [] and checked("f", [0, 0], steps) == [0, 0]
    rejected(steps, [0, -1])


def test_optional_takes_none_and_describes_its_constraint():
    clip = Optional(POSITIVE)
    assert checked("f", None, clip) is None
    assert checked("f", 2, clip) == 2.0
    assert str(rejected(clip, 0)) == "f: expected a positive number, got 0"


def test_any_of_is_stored_by_the_first_that_takes_it_and_names_every_form():
    either = AnyOf(OneOf(("auto",)), POSITIVE)
    assert either.description == "one of auto or a positive number"
    assert checked("f", "auto", either) == "auto"
    stored = checked("f", 2, either)
    assert stored == 2.0 and type(stored) is float
    rejected(either, 0)


def test_satisfies_and_instance_of_use_their_own_words():
    even = Satisfies(lambda v: isinstance(v, int) and v % 2 == 0, "an even integer")
    assert checked("f", 4, even) == 4
    assert str(rejected(even, 3)) == "f: expected an even integer, got 3"
    text = InstanceOf(str, "a string (a spec)")
    assert checked("f", "", text) == ""
    assert str(rejected(text, 3)) == "f: expected a string (a spec), got 3"


def test_checked_fields_walks_the_table_in_order_and_leaves_other_names_alone():
    table = {"a": POSITIVE_INT, "b": Boolean(), "c": POSITIVE}
    assert checked_fields("T", table, {"c": 1, "a": 2, "other": object}) == {"a": 2, "c": 1.0}
    with pytest.raises(ConfigError) as caught:
        checked_fields("T", table, {"c": -1, "b": "no", "a": 1})
    assert caught.value.field == "T.b"  # the table's order, not the values'
    assert str(caught.value) == "T.b: expected true or false, got 'no'"


# --- the tables of TrainConfig and the study spec ------------------------------------------


def test_train_config_declares_every_field_but_those_checked_with_others():
    assert set(field_names()) - set(CONSTRAINTS) == {"init", "init_std", "target_range"}
    assert set(CONSTRAINTS) <= set(field_names())


def test_the_study_table_declares_every_study_key_but_those_with_their_own_checks():
    assert set(STUDY_KEYS) - set(STUDY_CONSTRAINTS) == {"name", "objective", "pruner_options"}
    assert set(STUDY_CONSTRAINTS) <= set(STUDY_KEYS)


@pytest.mark.parametrize(("field", "inside", "outside"), [
    ("eta", ABOVE_0, 0),
    ("momentum", 0, 1),
    ("adam_beta2", BELOW_1, 1.0),
    ("decay_rate", 1, 0),
    ("diverge_factor", ABOVE_1, 1),
    ("weight_decay", 0, BELOW_0),
    ("n_evals", 2, 1),
    ("n_steps", MAX_STEPS, MAX_STEPS + 1),
    ("epochs", MAX_EPOCHS, MAX_EPOCHS * ABOVE_1),
    ("batch_size", 1, 0),
    ("seed", 0, -1),
    ("noise_seed", 0, -1),
])
def test_train_config_fields_take_their_boundaries(field, inside, outside):
    config = TrainConfig().replace(**{field: inside})
    assert getattr(config, field) == inside
    with pytest.raises(ConfigError) as caught:
        TrainConfig().replace(**{field: outside})
    assert caught.value.field == f"TrainConfig.{field}"
    assert caught.value.expected == CONSTRAINTS[field].description


@pytest.mark.parametrize(("key", "inside", "outside"), [
    ("replicates", 1, 0),
    ("seed", 2**32 - 1, 2**32),
    ("seed", 0, -1),
    ("save_probs", True, 1),
    ("lockstep", False, 0),
    ("sampler", "grid", "Grid"),
])
def test_study_keys_take_their_boundaries(key, inside, outside):
    assert getattr(StudySpec.from_dict({"study": {"name": "x", key: inside}}), key) == inside
    with pytest.raises(ConfigError) as caught:
        StudySpec.from_dict({"study": {"name": "x", key: outside}})
    assert caught.value.field == f"study.{key}"
    assert caught.value.expected == STUDY_CONSTRAINTS[key].description


@pytest.mark.parametrize(("key", "inside", "outside"), [
    ("n_classes", 2, 1),
    ("pixels", False, 0),
    ("train_size", 1, 0),
    ("split_seed", 0, -1),
    ("stratify", True, "true"),
])
def test_data_keys_take_their_boundaries(key, inside, outside):
    table = {"files": ["a.csv"], "split": [0.8, 0.1, 0.1]}
    assert getattr(data_spec({**table, key: inside}), key) == inside
    with pytest.raises(ConfigError) as caught:
        data_spec({**table, key: outside})
    assert caught.value.field == f"data.{key}"
    assert caught.value.expected == DATA_CONSTRAINTS[key].description
