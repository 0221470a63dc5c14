from segcourse.labs.environment import prepare_tensorflow

prepare_tensorflow()  # before TensorFlow is imported, as the CLI and the labs do; the
# notebooks' kernels inherit it

import keras  # noqa: E402  (after prepare_tensorflow)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
