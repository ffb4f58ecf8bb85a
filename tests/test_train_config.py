"""TrainConfig's check of a CNN layer spec: when the config is made, with the field named,
the same checks a CNN makes when it is built; and how `nnlab train` and `nnlab run` report
a bad spec (one line, exit 2, before any data is loaded or anything trains). Also: unknown
field names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nnlab.errors import ConfigError, NNLabError
from nnlab.nn import CNN
from nnlab.train import TrainConfig, get_preset

TOKEN_FORM = ("expected dash-separated tokens conv<filters>k<kernel>[s<stride>][p<padding>], "
              "pool<size>, dense<units>, dropout<rate> (e.g. 'conv32k5-pool2-dense128-"
              "dropout0.5'), got token ")


def cnn_config(layers: object, n_features: int = 784) -> TrainConfig:
    return TrainConfig(model="cnn", layers=layers, sizes=[n_features, 10])


@pytest.mark.parametrize(("layers", "message"), [
    ("conv8k3-blob2-dense8", TOKEN_FORM + "'blob2' in 'conv8k3-blob2-dense8'"),
    ("conv32k-pool2", TOKEN_FORM + "'conv32k' in 'conv32k-pool2'"),
    ("conv8k3-pool-dense8", TOKEN_FORM + "'pool' in 'conv8k3-pool-dense8'"),
    ("conv8k3-dense", TOKEN_FORM + "'dense' in 'conv8k3-dense'"),
    ("conv8k29", "'conv8k29' in 'conv8k29' on a 1x28x28 input: kernel 29x29 does not fit "
                 "the input 28x28 with padding 0; expected height and width >= 29"),
    ("conv32k5-pool2-conv64k5-pool2-conv8k5",
     "'conv8k5' in 'conv32k5-pool2-conv64k5-pool2-conv8k5' on a 1x28x28 input: kernel 5x5 "
     "does not fit the input 4x4 with padding 0; expected height and width >= 5"),
    ("conv8k3-dropout0.5-pool27", "'pool27' in 'conv8k3-dropout0.5-pool27' on a 1x28x28 "
                                  "input: window 27x27 does not fit the input 26x26; "
                                  "expected height and width >= 27"),
    ("conv8k3-dense8-pool2", "expected conv and pool layers before the first dense layer, "
                             "got 'pool2' after one in 'conv8k3-dense8-pool2'"),
    ("", "expected a CNN layer spec such as 'conv32k5-pool2-dense128' when model='cnn', "
         "got ''"),
    (["conv8k3"], "expected a string (the CNN layer spec), got ['conv8k3']"),
])
def test_bad_layer_spec_fails_when_the_config_is_made(layers, message):
    with pytest.raises(ConfigError) as caught:
        cnn_config(layers)
    assert str(caught.value) == f"TrainConfig.layers: {message}"
    assert caught.value.field == "TrainConfig.layers"


def test_good_specs_pass_up_to_the_kernel_that_just_fits():
    preset = get_preset("cnn")
    assert preset.replace(layers="conv8k28").layers == "conv8k28"  # 28x28 -> 1x1
    assert cnn_config("conv4k3p1-pool2-conv8k3s2-pool3-dense16-dropout0.25").model == "cnn"
    assert cnn_config("conv4k5p1", n_features=16).layers == "conv4k5p1"  # 4 + 2 >= 5
    with pytest.raises(NNLabError, match=r"^TrainConfig\.layers: 'conv4k5' in 'conv4k5' on a "
                                         r"1x4x4 input: kernel 5x5"):
        cnn_config("conv4k5", n_features=16)
    with pytest.raises(NNLabError, match=r"^TrainConfig\.layers: 'conv8k29'"):
        preset.replace(layers="conv8k29")


@pytest.mark.parametrize("layers", [
    "conv4k3-pool2-dense8", "conv4k3p1-pool2-conv6k3s2-dropout0.3", "conv4k8", "conv4k9",
    "pool3-conv2k2-pool2", "pool3-conv2k3", "conv4k3s3-conv4k2-conv2k2",
    "conv4k4p2-pool5-conv2k2", "dropout0.1-dense4",
])
def test_the_config_accepts_exactly_the_specs_a_cnn_builds_on_a_square_image(layers):
    """On 1x8x8 images (sizes[0] = 64) TrainConfig and CNN agree, with one explanation."""
    try:
        CNN(layers, (1, 8, 8), 10)
    except NNLabError as err:
        built_error = str(err).split(": ", 1)[1]  # after the layer's name
        with pytest.raises(NNLabError) as caught:
            cnn_config(layers, n_features=64)
        assert str(caught.value).endswith(f" on a 1x8x8 input: {built_error}")
    else:
        assert cnn_config(layers, n_features=64).layers == layers


def test_a_spec_is_only_rejected_when_no_image_of_that_size_fits_it():
    """sizes[0] = 20 allows 1x4x5, 2x2x5, 1x2x10...: the check uses 1x4x4, the largest
    square, whose side no image's shorter side exceeds."""
    assert cnn_config("conv4k4", n_features=20).layers == "conv4k4"
    CNN("conv4k4", (1, 4, 5), 10)  # the spec fits 1x4x5 images
    with pytest.raises(NNLabError, match=r"1x4x4 input: kernel 5x5 does not fit"):
        cnn_config("conv4k5", n_features=20)
    for image_shape in [(1, 4, 5), (1, 2, 10), (2, 2, 5), (5, 2, 2), (1, 1, 20)]:
        with pytest.raises(NNLabError, match="kernel 5x5 does not fit"):
            CNN("conv4k5", image_shape, 10)


# --- the command line -----------------------------------------------------------------

def run_cli(*args: str, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnlab.cli", *args], capture_output=True,
                          text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, cwd=cwd)


def only_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.integration
def test_cli_train_with_a_bad_layer_spec_fails_before_loading_data():
    result = run_cli("train", "--preset", "cnn", "--set", "layers=conv32k5-pool2-conv8k13")
    assert only_error_line(result) == (
        "nnlab: error: --set layers: 'conv8k13' in 'conv32k5-pool2-conv8k13' on a "
        "1x28x28 input: kernel 13x13 does not fit the input 12x12 with padding 0; expected "
        "height and width >= 13")


SPEC = """
[study]
name = "layer-specs"
[base]
preset = "cnn"
n_steps = 1
{base}
[grid]
{grid}
[data]
train_size = 256
val_size = 64
test_size = 64
"""


@pytest.mark.integration
@pytest.mark.parametrize(("base", "grid", "message"), [
    ("", 'layers = ["conv4k5-pool2-dense8", "conv4k5-pool2-conv8k5-pool2-conv8k5"]',
     "grid.layers[1]: 'conv8k5' in 'conv4k5-pool2-conv8k5-pool2-conv8k5' on a 1x28x28 "
     "input: kernel 5x5 does not fit the input 4x4 with padding 0; expected height and "
     "width >= 5"),
    ('layers = "conv4k3-pol2"', "eta = [1e-3, 2e-3]",
     f"base.layers: {TOKEN_FORM}'pol2' in 'conv4k3-pol2'"),
])
def test_cli_run_with_a_bad_layer_spec_fails_before_anything_trains(tmp_path, base, grid,
                                                                     message):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(base=base, grid=grid))
    result = run_cli("run", str(spec), "--results", str(tmp_path / "results"), "--quiet")
    assert only_error_line(result) == f"nnlab: error: {message}"
    assert not (tmp_path / "results").exists()


def test_a_layer_spec_on_an_mlp_is_refused_not_ignored():
    with pytest.raises(NNLabError) as caught:
        TrainConfig(model="mlp", layers="conv8k3-dense8", sizes=[784, 10])
    assert str(caught.value) == ("TrainConfig.layers: expected '' with model='mlp' (a layer "
                                 "spec needs model='cnn'), got 'conv8k3-dense8'")
    assert TrainConfig(model="mlp", layers="", sizes=[784, 10]).layers == ""


@pytest.mark.parametrize(("values", "message"), [
    ({"bogus": 1}, r"^TrainConfig\.bogus: unknown field; expected one of model, sizes, "),
    ({"etaa": 0.5}, r"^TrainConfig\.etaa: unknown field \(did you mean eta\?\); expected "),
    ({"seeds": 3}, r"^TrainConfig\.seeds: unknown field \(did you mean seed or sizes\?\)"),
])
def test_an_unknown_field_is_named_with_its_close_matches(values, message):
    """Before, TrainConfig(bogus=1) raised TypeError: unexpected keyword argument."""
    with pytest.raises(ConfigError, match=message) as caught:
        TrainConfig(**values)
    assert caught.value.field == f"TrainConfig.{next(iter(values))}"
    with pytest.raises(ConfigError, match=message):
        TrainConfig().replace(**values)
