"""The course map: every lab, its notebook, what it teaches, and its Colab link."""

from __future__ import annotations

from dataclasses import dataclass

#: The public repository the Colab links open (GitHub ``owner/name``) and the branch.
REPOSITORY = "segcourse/segcourse"
BRANCH = "main"


@dataclass(frozen=True)
class Lab:
    """One lab of the course: where its notebooks live and what it teaches."""
    number: int
    slug: str
    title: str
    topics: str
    available: bool

    @property
    def notebook(self) -> str:
        """The reference notebook's path in the repository."""
        return f"notebooks/{self.number:02d}_{self.slug}.ipynb"

    @property
    def student_notebook(self) -> str:
        """The generated student notebook's path in the repository."""
        return f"notebooks/student/{self.number:02d}_{self.slug}.ipynb"

    @property
    def colab_url(self) -> str:
        """The student notebook opened on Colab from the repository."""
        return (f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/"
                f"{self.student_notebook}")


LABS = (
    Lab(0, "welcome", "Welcome: semantic segmentation and the course map",
        "environment check, semantic vs instance segmentation, benchmarks, the course map", True),
    Lab(1, "fully_convolutional", "From classifier to fully convolutional network",
        "convolutionalization, FCN-32s/16s/8s, skip fusion, crop offsets", True),
    Lab(2, "upsampling", "Upsampling and checkerboard artifacts",
        "nearest, bilinear, bicubic, bed of nails, max unpooling, transposed convolution, "
        "checkerboard artifacts, resize-convolution", True),
    Lab(3, "receptive_fields", "Receptive fields and dilated convolutions",
        "receptive field arithmetic, effective receptive field, atrous convolutions, "
        "context module", True),
    Lab(4, "encoder_decoder", "Encoder-decoders: U-Net and SegNet",
        "valid-convolution sizes, copy-and-crop, pooling indices, skip memory", True),
    Lab(5, "context", "Multi-scale context: DeepLab and PSPNet",
        "ASPP, image pooling, pyramid pooling, output stride", True),
    Lab(6, "metrics_losses", "Measuring segmentation: accuracy, IoU, mIoU, soft IoU loss",
        "confusion matrix, pixel accuracy vs IoU vs mIoU, soft IoU and Dice losses", True),
)
