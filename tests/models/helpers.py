import numpy as np


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def non_trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


def conv_params(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)
