"""Segmentation models faithful to their papers, behind one registry.

    from segcourse import models
    model = models.build("fcn8s", num_classes=21)
    models.available()   # names, summaries, options
"""

from segcourse.models import deeplab, fcn, plain, pspnet, segnet, unet  # noqa: F401  (importing registers the models)
from segcourse.models.convolutionalize import convolutionalize
from segcourse.models.registry import available, build, check, parse_options, register_model

__all__ = ["available", "build", "check", "convolutionalize", "parse_options", "register_model"]
