import os

from segcourse.labs.environment import prepare_tensorflow, thread_settings

prepare_tensorflow()  # before TensorFlow is imported, as the CLI and the labs do; the
# notebooks' kernels inherit it
# pytest-xdist's workers run at once: each (and the kernels it starts) keeps to its share of cores
for _name, _value in thread_settings(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))).items():
    os.environ.setdefault(_name, _value)

import keras  # noqa: E402  (after prepare_tensorflow)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
