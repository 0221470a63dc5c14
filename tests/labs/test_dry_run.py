"""The dry run of the GPU profile (segcourse lab dry-run): the profile it forces, fit cut to a few
steps (counted by the optimizer), Pets faked in tfds' format, a report that tells a broken cell
from a check failed on meaningless scores; and every lab's GPU sections dry-run without an
error."""

from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest
import tensorflow as tf

from segcourse.cli import main
from segcourse.labs import Profile, detect_profile, dry_run_profile
from segcourse.labs import dry_run as dry
from segcourse.labs.checks import NOT_JUDGED
from segcourse.labs.execute import run_notebook
from segcourse.labs.notebook import CHECK_TAG, read_notebook
from segcourse.labs.profiles import choose_profile

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
LABS = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
WITH_GPU_SECTIONS = [name for name in LABS if dry.gpu_sections(read_notebook(NOTEBOOKS / name))]


@pytest.mark.parametrize("value, dry_run", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_the_dry_run_variable_makes_a_dry_gpu_profile(value, dry_run):
    profile = dry_run_profile({"SEGCOURSE_DRY_RUN": value, "SEGCOURSE_PROFILE": "cpu"})
    assert (profile is not None) is dry_run
    if dry_run:
        assert profile.dry_run and profile.name == "gpu"
        assert profile.pick(cpu=2, gpu=30) == 2  # shared code at CPU sizes
        assert profile.budget(600) == 2 and profile.budget(600, dry_run=5) == 5


def test_no_command_takes_the_dry_run_variable_for_a_profile():
    """Left exported in a shell, it must not turn `lab run` or `train` into a dry run: only a
    lab's setup() asks for it (dry_run_profile)."""
    environ = {"SEGCOURSE_DRY_RUN": "1", "SEGCOURSE_PROFILE": "cpu"}
    assert detect_profile(environ) == choose_profile(None, environ) == Profile(
        "cpu", "forced by SEGCOURSE_PROFILE")


def test_a_gpu_profile_gets_the_full_budget():
    profile = detect_profile({"SEGCOURSE_PROFILE": "gpu"})
    assert not profile.dry_run and profile.pick(cpu=2, gpu=30) == 30
    assert profile.budget(600) == 600


def tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


def steps_and_epochs(**fit_arguments):
    """Train a tiny model with the dry run's fit: (optimizer steps, epochs in its history)."""
    model = tiny_model()
    history = dry._cut_fit(keras.Model.fit)(model, verbose=0, **fit_arguments)
    return int(model.optimizer.iterations.numpy()), len(history.history["loss"])


def test_fit_on_arrays_trains_a_few_batches_of_a_few_epochs():
    x, y = np.zeros((100, 4), np.float32), np.zeros((100, 2), np.float32)
    assert steps_and_epochs(x=x, y=y, batch_size=8, epochs=20) == (2, 2)  # 2 epochs of 1 batch
    assert steps_and_epochs(x=x, y=y, batch_size=8, epochs=1) == (1, 1)
    # validation_freq=3 trains three epochs, so that it validates once
    model = tiny_model()
    history = dry._cut_fit(keras.Model.fit)(model, x, y, batch_size=8, epochs=30, verbose=0,
                                             validation_data=(x, y), validation_freq=3)
    assert len(history.history["loss"]) == 3 and len(history.history["val_loss"]) == 1


def test_fit_on_a_dataset_or_a_generator_trains_a_few_steps():
    x, y = np.zeros((64, 4), np.float32), np.zeros((64, 2), np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    assert steps_and_epochs(x=data, epochs=5, validation_data=data) == (2, 2)

    def endless():
        while True:
            yield x[:4], y[:4]

    assert steps_and_epochs(x=endless(), steps_per_epoch=500, epochs=2) == (2, 2)


def test_side_by_side_training_takes_the_steps_of_a_cut_fit():
    from segcourse.losses import MaskedCrossEntropy
    from segcourse.side_by_side import train_side_by_side

    keras.utils.set_random_seed(0)
    nets = {name: keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])
            for name in ("a", "b")}
    for net in nets.values():
        net.compile("sgd")
    images, masks = np.zeros((40, 4, 4, 1), np.float32), np.zeros((40, 4, 4), np.int32)
    endless = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2).repeat()
    eager = []

    def loss(masks, logits):  # records whether the step runs eagerly (a cut fit does too)
        eager.append(tf.executing_eagerly())
        return MaskedCrossEntropy()(masks, logits)

    steps = dry._cut_side_by_side(train_side_by_side)(nets, endless, loss, progress=False)
    assert steps == dry.DRY_EPOCHS * dry.DRY_STEPS == 2
    assert [int(net.optimizer.iterations.numpy()) for net in nets.values()] == [steps, steps]
    assert eager == [True] * 2 * steps and not tf.config.functions_run_eagerly()  # restored


def test_fit_arguments_are_cut_by_name():
    x = {"a": np.arange(10), "b": np.arange(10)}
    cut = dry.cut_fit_arguments({"x": x, "y": np.arange(10), "batch_size": 2, "epochs": 9,
                                 "initial_epoch": 4, "validation_data": (x, np.arange(10))})
    assert cut["epochs"] == 4 + dry.DRY_EPOCHS
    assert [len(v) for v in cut["x"].values()] == [2, 2] and len(cut["y"]) == 2
    assert [len(v) for v in cut["validation_data"][0].values()] == [2, 2]


def test_fake_pets_are_in_the_real_feature_format():
    import tensorflow_datasets as tfds

    features = tfds.builder("oxford_iiit_pet").info.features  # the real dataset's, offline
    data = dry.fake_pets_examples(None, "train")
    assert set(data.element_spec) == set(features)
    for name, spec in data.element_spec.items():
        assert spec.dtype == features[name].dtype, name
        assert tuple(spec.shape) == tuple(features[name].shape), name
    examples = list(data.as_numpy_iterator())
    assert len(examples) == dry.FAKE_PETS
    for example in examples:
        image, trimap = example["image"], example["segmentation_mask"]
        assert trimap.shape == (*image.shape[:2], 1)
        assert all(dry.FAKE_PET_SIDES[0] <= side <= dry.FAKE_PET_SIDES[1]
                   for side in image.shape[:2])
        assert set(np.unique(trimap)) == {1, 2, 3}
        pet = trimap[..., 0] == 1
        assert image[pet].mean() > image[~pet].mean()  # something to learn
    assert len({example["image"].shape for example in examples}) > 1  # sizes vary, as in Pets
    # each split its own pictures: tfds' train and val slices are anagrams of each other
    train, val = (next(dry.fake_pets_examples(None, split).as_numpy_iterator())["image"]
                  for split in ("train[:90%]", "train[90%:]"))
    assert train.shape != val.shape or not np.array_equal(train, val)


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)
    return path


def test_the_report_names_each_failing_cell_and_the_thresholds_it_did_not_judge(tmp_path,
                                                                                 capsys):
    path = write_notebook(
        tmp_path / "lab.ipynb",
        "from segcourse.labs import setup\nPROFILE = setup()",
        "from segcourse.labs import check_at_least, check_equal\n"
        "check_at_least('mIoU', 0.1, 0.8)\nprint('after the threshold')",
        "check_equal('classes', 3, 2)",
        f'if {dry.GPU_SECTION}:\n    {{}}["missing"]\nelse:\n    print("CPU profile")',
        "print('after')")
    nb = read_notebook(path)
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("## prose does not count"))
    nbformat.write(nb, path)
    report = dry.dry_run_notebook(path, timeout=120)
    assert all(not cell.get("outputs") for cell in read_notebook(path).cells)  # not written
    assert report.code_cells == 5 and report.gpu_sections == 1
    assert [(where.split(" (")[0], name) for where, name, _ in report.errors] == [
        ("code cell 3", "CheckFailed"), ("code cell 4", "KeyError")]
    assert report.not_judged == [("code cell 2 (from segcourse.labs import check_at_least, "
                                  "check_equal)", "mIoU: not judged in a dry run (0.1 against "
                                  "0.8)")]
    assert main(["lab", "dry-run", str(path)]) == 1
    said = capsys.readouterr().out
    assert "2 error(s)" in said and "code cell 4 (if PROFILE.name" in said
    assert "after an earlier error" in said and "after the threshold" not in said


def test_the_kernel_is_a_dry_run(tmp_path, monkeypatch):
    keras_home = tmp_path / "keras_home"  # an empty cache: ImageNet weights must not be needed
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    path = write_notebook(
        tmp_path / "lab.ipynb",
        "from segcourse.labs import setup\nPROFILE = setup()",
        "import keras, numpy as np\n"
        "assert (PROFILE.name, PROFILE.dry_run, PROFILE.pick(cpu=2, gpu=30)) == ('gpu', True, 2)\n"
        "import tensorflow as tf  # and setup() turned TF32 off\n"
        "assert not tf.config.experimental.tensor_float_32_execution_enabled()\n"
        "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "model.compile('sgd', 'mse')\n"
        "model.fit(np.zeros((99, 4)), np.zeros((99, 2)), batch_size=3, epochs=50, verbose=0)\n"
        "assert int(model.optimizer.iterations.numpy()) == 2, model.optimizer.iterations",
        "from segcourse.losses import MaskedCrossEntropy\n"
        "from segcourse.side_by_side import train_side_by_side  # imported after setup()\n"
        "net = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])\n"
        "net.compile('sgd')\n"
        "pairs = [(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4), np.int32))] * 50\n"
        "assert train_side_by_side({'net': net}, pairs, MaskedCrossEntropy()) == 2\n"
        "assert int(net.optimizer.iterations.numpy()) == 2, net.optimizer.iterations",
        "from segcourse.data import pets\n"
        "images, masks = next(iter(pets.dataset('test', 16, 32)))\n"
        f"assert images.shape == ({dry.FAKE_PETS}, 16, 16, 3), images.shape  # no download\n"
        "from segcourse.models.backbones import backbone\n"
        "net = backbone('mobilenetv2', (32, 32, 3), weights='imagenet')  # random, offline\n"
        "assert len(net.outputs) == 4")
    report = dry.dry_run_notebook(path, timeout=120)
    assert not report.errors and not report.not_judged, report.summary()
    assert not list(keras_home.rglob("*.h5"))  # no weights file was fetched


def test_lab_run_is_never_a_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGCOURSE_DRY_RUN", "1")  # left exported in the shell
    path = write_notebook(tmp_path / "lab.ipynb",
                          "from segcourse.labs import setup\nPROFILE = setup()",
                          "print(PROFILE.dry_run, PROFILE.name)")
    nb = run_notebook(path, profile="cpu", timeout=120, write=False)
    assert nb.cells[1].outputs[0]["text"] == "False cpu\n"


def test_the_labs_with_gpu_sections_are_found():
    expected = ["01_fully_convolutional", "02_upsampling", "04_encoder_decoder", "05_context",
                "06_metrics_losses", "07_train_diagnose", "08_backbones_transfer", "09_decoders",
                "10_deeplab_lineage",
                "11_imbalance_losses", "12_biomedical_unet", "13_instances_panoptic",
                "14_evaluation"]
    assert [name.removesuffix(".ipynb") for name in WITH_GPU_SECTIONS] == expected


def pytest_generate_tests(metafunc):
    if metafunc.cls is not None and "name" in metafunc.fixturenames:
        metafunc.parametrize("name", metafunc.cls.labs)


class DryRuns:
    """Every GPU section runs, and every check cell prints its stored text (the test-only knob of
    the 'same text in both profiles' rule: budgets cut, thresholds not judged). Two subclasses,
    two scopes: `--dist loadscope` gives each its own worker (in one scope the fifteen dry runs,
    about 8 minutes in one process on a quiet machine, would queue on one worker)."""

    labs: tuple[str, ...] = ()

    def test_the_lab_runs_in_a_dry_run_of_its_gpu_profile_and_its_checks_print_as_stored(
            self, name):
        report = dry.dry_run_notebook(NOTEBOOKS / name)
        assert report.gpu_sections >= (name in WITH_GPU_SECTIONS)
        assert not report.errors, report.summary()


@pytest.mark.slow  # 10 s to a minute each: the newest pair only, like the labs 07-14 under nbval
class TestDryRunsOfLabs00To07(DryRuns):
    labs = tuple(name for name in LABS if name < "08")


@pytest.mark.slow
class TestDryRunsOfLabs08To14(DryRuns):
    labs = tuple(name for name in LABS if name >= "08")


def test_the_two_classes_dry_run_every_lab():
    assert [*TestDryRunsOfLabs00To07.labs, *TestDryRunsOfLabs08To14.labs] == LABS
    assert len(LABS) == 15


def store_check_outputs(path, texts):
    """Make each cell of the notebook at ``path`` a check cell with ``texts[i]`` as its stored
    output (``None``: left a plain cell)."""
    nb = read_notebook(path)
    for cell, text in zip(nb.cells, texts, strict=True):
        if text is not None:
            cell.metadata["tags"] = [CHECK_TAG]
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
            cell.execution_count = 1
    nbformat.write(nb, path)


def test_a_check_that_prints_otherwise_in_the_gpu_profile_is_an_error(tmp_path):
    path = write_notebook(
        tmp_path / "lab.ipynb",
        "from segcourse.labs import setup\nPROFILE = setup()",
        "from segcourse.labs import check_at_least\n"
        "check_at_least('mIoU', 0.1, 0.8)\nprint('size', PROFILE.pick(cpu=64, gpu=64))",
        "print('profile', PROFILE.name)",
        "print('same')")
    store_check_outputs(path, [None, "mIoU ≥ 0.8: ok\nsize 64\n", "profile cpu\n", "same\n"])
    report = dry.dry_run_notebook(path, timeout=120)
    assert [(where.split(" (")[0], name) for where, name, _ in report.errors] == [
        ("code cell 3", "CheckOutputDiffers")]
    assert "'profile gpu' where the stored output says 'profile cpu'" in report.errors[0][2]


def test_a_check_cut_off_by_the_timeout_is_reported_as_the_timeout_only(tmp_path):
    path = write_notebook(tmp_path / "lab.ipynb", "print('before')",
                          "print('a', flush=True)\nimport time\ntime.sleep(60)\nprint('b')",
                          "print('never run')")
    store_check_outputs(path, ["before\n", "a\nb\n", "never run\n"])
    report = dry.dry_run_notebook(path, timeout=5)
    assert [(where.split(" (")[0], name) for where, name, _ in report.errors] == [
        ("at or after code cell 2", "CellTimeoutError")]


def test_a_threshold_not_judged_reads_as_its_ok_line():
    assert dry.as_judged(f"Pets: mIoU: {NOT_JUDGED} (0.4375 against 0.6)") == "Pets: mIoU ≥ 0.6: ok"
    assert dry.first_difference(["a: ok", "b ≥ 0.5: ok"],
                                ["a: ok", f"b: {NOT_JUDGED} (0.1 against 0.5)"]) is None
    assert "line 2" in dry.first_difference(["a: ok", "b: ok"], ["a: ok"])
