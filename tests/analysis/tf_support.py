"""What the installed TensorFlow can run on this CPU.

TensorFlow's own CPU kernel for a transposed convolution refuses dilation rates above 1
("Current CPU implementations do not yet support dilation rates larger than 1"); only its oneDNN
path runs them. TensorFlow turns oneDNN on by itself only on CPUs with AVX-512-class features;
segcourse's ``prepare_tensorflow`` (called by tests/conftest.py) turns it on on every x86-64 CPU
with AVX2 unless TF_ENABLE_ONEDNN_OPTS says otherwise. Tests of dilated transposed convolutions
run where it is on.
"""

import functools

import keras
import numpy as np


@functools.cache
def dilated_transposed_supported() -> bool:
    layer = keras.layers.Conv2DTranspose(1, 3, dilation_rate=2)
    try:
        layer(np.zeros((1, 4, 4, 1), np.float32))
    except Exception:  # TensorFlow's InvalidArgumentError, whatever its module path
        return False
    return True


SKIP_REASON = ("this TensorFlow cannot run a dilated Conv2DTranspose on this CPU (its oneDNN "
               "path is off here: segcourse turns it on only on x86-64 CPUs with AVX2)")
