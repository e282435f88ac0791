"""Config: composition, overrides, and an error naming the key for each bad input."""

import pytest
from conftest import run_cli, write_experiment

from components.common.errors import ConfigError
from components.config.loading import load_experiment, to_yaml


def test_gas_furnace_reproduces_the_course_setup():
    config = load_experiment("gas_furnace")
    assert config.data.path.endswith("box-jenkins-gas-furnace.txt")
    assert config.data.sha256.startswith("0c1283e7")
    assert config.data.targets == ["GR", "CO2"]
    assert (config.split.test, config.window.input_width, config.window.horizon) == (
        100,
        10,
        1,
    )
    assert config.model.kind == "lstm"  # from conf/model/lstm.yaml via defaults


def test_overrides_use_dotted_keys_and_yaml_values():
    config = load_experiment(
        "gas_furnace",
        [
            "model.kind=gru",
            "train.epochs=50",
            "data.targets=[CO2]",
            "model.units=[8, 4]",
        ],
    )
    assert config.model.kind == "gru" and config.train.epochs == 50
    assert config.data.targets == ["CO2"] and config.model.units == [8, 4]


def test_a_short_file_anywhere_is_a_complete_experiment(tmp_path, series_csv):
    path = write_experiment(
        tmp_path / "mine.yaml",
        f"data:\n  path: {series_csv}\n  targets: [b]\nwindow:\n  input_width: 6\n",
    )
    config = load_experiment(str(path))
    assert config.name == "mine" and config.data.targets == ["b"]
    assert config.window.input_width == 6 and config.train.batch_size == 32  # default
    assert "input_width: 6" in to_yaml(config)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("train.epocs=3", "train.epocs", "unknown key; valid keys here: ['batch_size'"),
        ("train.epochs=ten", "train.epochs", "expected an integer, got 'ten'"),
        ("train.epochs=0", "train.epochs", "expected a positive integer, got 0"),
        ("train.epochs=-5", "train.epochs", "expected a positive integer, got -5"),
        ("model.units=[32, 0]", "model.units.1", "expected a positive integer, got 0"),
        ("window.horizon=0", "window.horizon", "expected a positive integer, got 0"),
        (
            "model.kind=transformer",
            "model.kind",
            "['bidirectional', 'gru', 'lstm', 'mlp', 'seq2seq', 'simple_rnn']",
        ),
        ("split.test=12.5", "split.test", "whole row count"),
        ("data.sha256=abc", "data.sha256", "64 hexadecimal"),
        ("colour=red", "colour", "unknown key"),
    ],
)
def test_bad_values_name_the_key_and_the_expectation(override, key, expected):
    with pytest.raises(ConfigError) as err:
        load_experiment("gas_furnace", [override])
    message = str(err.value)
    assert "gas_furnace.yaml" in message
    assert f"`{key}`" in message and expected in message
    if "unknown key" not in expected:  # one voice: Keras' "invalid value for"
        assert f"invalid value for `{key}`: expected " in message


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_experiment("gas_furnace", ["train.epochs"])


def test_unknown_experiment_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"Available: \[.*'gas_furnace'"):
        load_experiment("gas_furnance")


def test_python_tags_in_yaml_are_refused(tmp_path):
    path = write_experiment(
        tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['true']\n"
    )
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(str(path))


def test_defaults_must_name_an_existing_part(tmp_path):
    path = write_experiment(tmp_path / "x.yaml", "defaults:\n  model: nope\n")
    with pytest.raises(ConfigError, match=r"`defaults.model` names 'nope'"):
        load_experiment(str(path))


def test_cli_reports_config_errors_without_traceback():
    result = run_cli(["train", "gas_furnace", "train.epochs=0", "colour=red"])
    assert result.returncode == 2
    assert "`train.epochs`" in result.stderr and "`colour`" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_show_prints_the_resolved_config():
    result = run_cli(["show", "gas_furnace", "model.kind=gru"])
    assert result.returncode == 0, result.stderr
    assert "kind: gru" in result.stdout and "input_width: 10" in result.stdout


def test_season_must_fit_in_the_window():
    with pytest.raises(ConfigError, match=r"`evaluate.season` \(12\) must not exceed"):
        load_experiment("gas_furnace", ["evaluate.season=12"])
    assert load_experiment("gas_furnace", ["evaluate.season=5"]).evaluate.season == 5


@pytest.mark.parametrize(
    "levels, expected",
    [
        ("[0.95, 0.8]", "strictly increasing"),
        ("[0.8, 0.8]", "strictly increasing"),
        ("[0.8, 1.0]", "strictly between 0 and 1"),
        ("[0]", "strictly between 0 and 1"),
    ],
)
def test_interval_levels_are_refused_by_name(levels, expected):
    with pytest.raises(ConfigError) as err:
        load_experiment("gas_furnace", [f"evaluate.intervals={levels}"])
    message = str(err.value)
    assert "`evaluate.intervals`" in message and expected in message
    assert levels.replace(" ", "") in message.replace(" ", "")
    assert load_experiment("gas_furnace", ["evaluate.intervals=[]"]).evaluate.intervals == []


def test_run_params_leave_out_the_settings_the_kind_ignores():
    from components.tracking.params import flatten

    gru = flatten(load_experiment("default", ["model.kind=gru"]))
    assert "model.merge_mode" not in gru and "model.attention" not in gru
    assert "model.cell" not in gru and gru["model.recurrent_dropout"] == 0.0
    mlp = flatten(load_experiment("default", ["model.kind=mlp"]))
    assert "model.activation" not in mlp and "model.layer_norm" not in mlp
    seq2seq = flatten(load_experiment("default", ["model.kind=seq2seq"]))
    assert {"model.cell", "model.attention"} <= set(seq2seq)
    assert "model.merge_mode" not in seq2seq
    every = flatten(load_experiment("default", ["model.kind=gru"]), for_kind=False)
    assert "model.merge_mode" in every


def test_an_experiment_that_names_no_model_gets_the_default_experiments_kind(tmp_path):
    """One default kind everywhere: `rnnflow train` and a user's own file."""
    path = tmp_path / "mine.yaml"
    path.write_text("data: {path: statsmodels:sunspots}\n")
    assert load_experiment(str(path)).model.kind == load_experiment().model.kind == "gru"
