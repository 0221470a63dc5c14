import os
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from segcourse.cli import main
from segcourse.labs.catalog import LABS


def test_info_reports_environment_profile_and_labs():
    result = subprocess.run([sys.executable, "-m", "segcourse", "info"], capture_output=True,
                            text=True, check=True)
    assert "backend       tensorflow" in result.stdout
    assert "profile       cpu profile" in result.stdout
    for lab in LABS:
        assert lab.title in result.stdout


def test_lab_check_reports_problems_and_fails(tmp_path, capsys):
    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), path)
    assert main(["lab", "check", str(path)]) == 1
    assert "the first cell must be the setup cell" in capsys.readouterr().out


def test_lab_check_on_a_student_version_says_what_it_is(capsys):
    # it listed fourteen problems and said to run `segcourse lab run`
    from pathlib import Path

    student = Path(__file__).parents[1] / "notebooks" / "student" / "00_welcome.ipynb"
    assert main(["lab", "check", str(student)]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out and "a student version" in out
    assert "notebooks/00_welcome.ipynb" in out


def test_lab_check_names_a_cell_that_binds_an_exercises_name_again(tmp_path, capsys):
    from pathlib import Path

    from segcourse.labs.notebook import read_notebook

    nb = read_notebook(Path(__file__).parents[1] / "notebooks" / "04_encoder_decoder.ipynb")
    context = next(i for i, c in enumerate(nb.cells) if "all_skips_bytes = " in c.source)
    nb.cells[context].source = nb.cells[context].source.replace("all_skips_bytes",
                                                                "unet_skip_bytes")
    path = tmp_path / "04_encoder_decoder.ipynb"
    nbformat.write(nb, path)
    assert main(["lab", "check", str(path)]) == 1
    assert f"cell {context} (context) binds 'unet_skip_bytes' again" in capsys.readouterr().out


def test_lab_run_stores_outputs_under_the_requested_profile(tmp_path):
    path = tmp_path / "lab.ipynb"
    cell = nbformat.v4.new_code_cell("import os; print(os.environ['SEGCOURSE_PROFILE'])")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    assert main(["lab", "run", "--profile", "gpu", str(path)]) == 0
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == "gpu\n"


def test_analyze_prints_fields_and_the_per_layer_summary(capsys):
    assert main(["analyze", "unet", "--model-size", "small", "--image-size", "64",
                 "--option", "depth=2"]) == 0
    out = capsys.readouterr().out
    assert "receptive fields of" in out and "per-layer summary of" in out
    score_field = next(line for line in out.splitlines() if line.startswith("score ")
                       and "Conv2D" in line)
    assert score_field.split()[3] == "44"  # depth-2 U-Net: see tests/analysis
    assert "multiply-accumulates" in out


def test_analyze_reads_a_saved_model(tmp_path, capsys):
    from segcourse import models

    path = tmp_path / "m.keras"
    models.build("fcn8s", 3, (64, 64, 3), model_size="small").save(path)
    assert main(["analyze", str(path), "--fields-only"]) == 0
    out = capsys.readouterr().out
    assert "per-layer summary" not in out
    assert any(line.startswith("score ") and line.split()[-1] == "0" for line in out.splitlines())


# Issue 11 ------------------------------------------------------------------------------------

# Flags that keep a run short should a bad value ever get through to training.
SMALL = ["--profile", "cpu", "--epochs", "1", "--batch-size", "4", "--train-count", "4",
         "--image-size", "32"]


class Stop(Exception):
    """Raised by the stand-in for train(): what the CLI built is checked, nothing is trained."""


@pytest.fixture
def train_config(monkeypatch):
    """The TrainConfig `segcourse train` would train, captured instead of training."""
    import segcourse.train

    seen = {}

    def fake_train(config, verbose="auto"):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr(segcourse.train, "train", fake_train)
    return seen


def test_train_options_are_read_by_their_types(train_config, tmp_path):
    with pytest.raises(Stop):
        main(["train", "unet", "--profile", "cpu", "--out", str(tmp_path), "--option",
              "skips=false", "--option", "depth=2", "--option", "batch_norm=none",
              "--option", "width=0.5"])
    options = train_config["config"].model_options
    assert options == {"skips": False, "depth": 2, "batch_norm": None, "width": 0.5}
    assert options["skips"] is False


def test_train_passes_its_warm_up(train_config, tmp_path):
    with pytest.raises(Stop):
        main(["train", "unet", "--profile", "cpu", "--warmup-epochs", "2", "--out", str(tmp_path)])
    assert train_config["config"].warmup_epochs == 2


@pytest.mark.parametrize("option, said", [
    ("depth=abc", "option depth=abc is not a whole number; write it like depth=4"),
    ("skips=maybe", "option skips=maybe is not true or false"),
    ("kernel=3", "unet has no option kernel"),
    ("width=0", "option width must be a width multiplier above 0"),
])
def test_train_refuses_an_option_that_does_not_fit(option, said, tmp_path, capsys):
    assert main(["train", "unet", *SMALL, "--out", str(tmp_path / "runs"),
                 "--option", option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segcourse train: ") and said in err
    assert "Traceback" not in err
    if "kernel" not in option and "width" not in option:
        assert "skips (true or false, default true)" in err  # the allowed options
    assert not (tmp_path / "runs").exists()


def test_analyze_options_are_read_by_their_types(capsys):
    assert main(["analyze", "unet", "--model-size", "small", "--image-size", "32", "--summary-only",
                 "--option", "depth=2", "--option", "skips=false"]) == 0
    out = capsys.readouterr().out
    assert "up1_conv1" in out and "concat" not in out  # no copy-and-crop: skips are off
    assert main(["analyze", "unet", "--option", "depth=two"]) == 2
    assert "option depth=two is not a whole number" in capsys.readouterr().err


def test_analyze_refuses_options_for_a_saved_model(tmp_path, capsys):
    from segcourse import models

    path = tmp_path / "m.keras"
    models.build("plain", 3, (None, None, 3), depth=1, filters=2).save(path)
    assert main(["analyze", str(path), "--option", "depth=2"]) == 2
    assert "leave out --option depth=2" in capsys.readouterr().err


def test_analyze_sizes_a_saved_model_by_image_size_and_refuses_what_it_cannot_honour(
        tmp_path, capsys):
    # --image-size, --num-classes and --model-size used to be ignored for a .keras file
    from segcourse import models

    free, fixed = tmp_path / "free.keras", tmp_path / "fixed.keras"
    models.build("plain", 3, (None, None, 3), depth=1, filters=2).save(free)
    models.build("plain", 3, (32, 32, 3), depth=1, filters=2).save(fixed)
    assert main(["analyze", str(free), "--image-size", "48", "--summary-only"]) == 0
    out = capsys.readouterr().out
    activations = 48 * 48 * (3 + 3 * 2 + 3)  # input; 2-filter conv, its BN, ReLU; 3 scores
    macs = 48 * 48 * (3 * 3 * 3 * 2 + 2 * 3)  # the 3x3 conv and the 1x1 score layer
    assert f"{activations:,} activations per picture" in out
    assert out.splitlines()[-3].split()[-1] == f"{macs:,}"  # the table's total
    assert main(["analyze", str(free), "--summary-only"]) == 2
    assert "takes pictures of any size" in capsys.readouterr().err
    assert main(["analyze", str(fixed), "--image-size", "48"]) == 2
    assert "takes 32 × 32 pictures only, not --image-size 48 × 48" in capsys.readouterr().err
    assert main(["analyze", str(fixed), "--num-classes", "5", "--model-size", "small"]) == 2
    assert ("leave out --num-classes 5 --model-size small"
            in capsys.readouterr().err)


@pytest.mark.parametrize("flags, said", [
    (["--train-count", "0"], "train_count must be a whole number of at least 1; got 0"),
    (["--epochs", "0"], "epochs must be a whole number of at least 1; got 0"),
    (["--batch-size", "0"], "batch_size must be a whole number of at least 1; got 0"),
    (["--batch-size", "-4"], "batch_size must be a whole number of at least 1; got -4"),
    (["--image-size", "0"], "image_size must be a whole number of at least 1; got 0"),
    (["--image-size", "-32"], "image_size must be a whole number of at least 1; got -32"),
    (["--image-size", "40"], "unet: input height 40 is not a multiple of its total stride 16; "
                             "the nearest valid sizes are 32 or 48"),
    (["--learning-rate", "0"], "learning_rate must be a number above 0"),
    (["--option", "variant=papr"], "unet: variant must be one of"),
])
def test_train_refuses_a_bad_configuration_before_any_work(flags, said, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "unet", *SMALL, *flags, "--out", str(runs)]) == 2
    err = capsys.readouterr().err
    assert said in err and "Nothing was trained and no run folder was made" in err
    assert "Traceback" not in err
    assert not runs.exists()


def test_a_bad_configuration_names_every_bad_value():
    from segcourse.train import TrainConfig

    with pytest.raises(ValueError) as refusal:
        TrainConfig(model="segnet", epochs=0, batch_size=-1, image_size=48,
                    learning_rate=float("nan"), seed=-1, distribute="all").validate()
    message = str(refusal.value)
    for said in ("epochs must be", "batch_size must be", "learning_rate must be",
                 "seed must be", "distribute must be", "input height 48 is not a multiple"):
        assert said in message
    assert TrainConfig(model="unet", image_size=32).validate().epochs == 14  # profile default


def test_user_errors_are_one_paragraph_and_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SEGCOURSE_DEBUG", raising=False)
    missing = str(tmp_path / "nowhere")
    assert main(["evaluate", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"segcourse evaluate: {missing} is neither a run folder")
    assert "Traceback" not in err and "--debug" in err
    assert main(["--debug", "evaluate", missing]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    assert main(["evaluate", missing, "--debug"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("SEGCOURSE_DEBUG", "1")
    assert main(["evaluate", missing]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_argparse_errors_stay_as_they_are(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train"])
    assert exit_.value.code == 2
    assert "the following arguments are required: model (or --resume RUN)" in \
        capsys.readouterr().err


def test_version_is_the_installed_distributions(capsys, monkeypatch):
    from importlib import metadata

    import segcourse

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"segcourse {metadata.version('segcourse')}\n"
    assert metadata.version("segcourse") == segcourse.__version__  # pyproject.toml agrees

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)  # a source tree run uninstalled
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"segcourse {segcourse.__version__} (not installed)\n"


def test_the_command_exits_2_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "segcourse", "train", "unet", *SMALL,
                             "--option", "depth=abc", "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, env={**os.environ,
                                                                 "SEGCOURSE_DEBUG": "0"})
    assert result.returncode == 2
    assert "segcourse train: unet: option depth=abc is not a whole number" in result.stderr
    assert "Traceback" not in result.stderr


# Issue 11: a .keras file that is not one ---------------------------------------------------------

def broken_keras_files(folder):
    """A random-bytes file, a truncated archive and a text file, each named .keras."""
    import zipfile

    random_bytes = folder / "random.keras"
    random_bytes.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, np.uint8)))
    whole = folder / "whole.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        archive.writestr("config.json", "{}" * 500)
        archive.writestr("model.weights.h5", b"\0" * 5000)
    truncated = folder / "truncated.keras"
    truncated.write_bytes(whole.read_bytes()[:-200])
    text = folder / "notes.keras"
    text.write_text("not a model\n")
    return [random_bytes, truncated, text]


@pytest.mark.parametrize("command", ["evaluate", "analyze"])
def test_a_corrupt_or_missing_keras_file_is_named_as_such(command, tmp_path, capsys):
    for path in broken_keras_files(tmp_path):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert f"segcourse {command}: {path} is not a valid Keras archive" in err
        assert "File not found" not in err and "Traceback" not in err
    missing = tmp_path / "nowhere.keras"
    assert main([command, str(missing)]) == 2
    assert f"{missing} does not exist" in capsys.readouterr().err


# Help, profiles and --option text: the CLI a user expects ------------------------------------

def all_parsers():
    """(name, parser) of every command and subcommand, `grade` and `grade merge` included."""
    import argparse

    from segcourse.cli import build_grade_parser, build_merge_parser, build_parser

    found, todo = [], [("segcourse", build_parser()), ("segcourse grade", build_grade_parser()),
                       ("segcourse grade merge", build_merge_parser())]
    while todo:
        name, parser = todo.pop()
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                assert all(helps.values()) and set(helps) == set(action.choices), name
                todo.extend((f"{name} {command}", sub) for command, sub in action.choices.items()
                            if sub._actions)  # `segcourse grade` is a stand-in: its own parser
    return found


def test_every_argument_has_help_that_states_its_default():
    import argparse

    parsers = all_parsers()
    assert {"segcourse train", "segcourse lab run", "segcourse bench", "segcourse grade",
            "segcourse grade merge"} <= {name for name, _ in parsers}
    for name, parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where} has no help"
            shown = formatter._expand_help(action)
            assert "None" not in shown, f"{where}: {shown}"
            default = action.default
            if action.nargs != 0 and default not in (None, argparse.SUPPRESS, []):
                value = " ".join(map(str, default)) if isinstance(default, list) else default
                assert f"(default: {value})" in shown, f"{where}: {shown}"


def test_help_shows_the_defaults_and_the_profile_rule(capsys):
    from segcourse.labs.profiles import PROFILE_RULE

    for command in (["train"], ["lab", "run"], ["bench"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        if command[0] != "bench":
            assert f"default: {PROFILE_RULE}" in out
    assert "(default: benchmarks/report.md)" in out and "(default: unet fcn8s segnet)" in out


@pytest.mark.parametrize("environ, accelerators, profile", [
    ({"SEGCOURSE_PROFILE": "gpu"}, [], "gpu"),
    ({"SEGCOURSE_PROFILE": "cpu"}, ["GPU:0"], "cpu"),
    ({}, ["GPU:0"], "gpu"),
    ({}, [], "cpu"),
])
def test_train_and_lab_run_choose_the_same_profile(environ, accelerators, profile,
                                                   train_config, tmp_path, monkeypatch):
    import segcourse.labs.execute
    import segcourse.labs.profiles

    monkeypatch.delenv("SEGCOURSE_PROFILE", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(segcourse.labs.profiles, "accelerators", lambda: accelerators)
    ran = {}
    monkeypatch.setattr(segcourse.labs.execute, "run_notebook",
                        lambda path, profile, timeout: ran.setdefault("profile", profile))
    assert main(["lab", "run", str(tmp_path / "lab.ipynb")]) == 0
    with pytest.raises(Stop):
        main(["train", "unet", "--out", str(tmp_path)])
    assert train_config["config"].profile == ran["profile"] == profile
    with pytest.raises(Stop):  # and --profile wins over both, in both
        main(["train", "unet", "--profile", "cpu", "--out", str(tmp_path)])
    assert train_config["config"].profile == "cpu"


@pytest.mark.parametrize("command", [["train", "unet", *SMALL], ["analyze", "unet"]])
def test_an_option_without_equals_is_refused_saying_how_to_write_it(command, tmp_path, capsys):
    assert main([*command, "--option", "depth"]) == 2
    err = capsys.readouterr().err
    assert f"segcourse {command[0]}: an option is KEY=VALUE (e.g. depth=3); got 'depth'" in err
    assert "depth (a whole number, default 4)" in err and "Traceback" not in err
