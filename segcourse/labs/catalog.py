"""The course map: every lab, its notebook, what it teaches, and its Colab link.

This is the one place a lab's title and topics are written for the course: lab 00 prints its
map from here, and ``segcourse info`` lists the titles. ``tests/labs/test_catalog.py`` holds
each available lab's entry to its reference notebook: the title is the notebook's first
heading (``# Lab NN — <title>``) and the topics are its numbered sections (``## 1. <topic>``,
...), all of them, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from segcourse import __version__

#: The public repository the Colab links open (GitHub ``owner/name``) and the branch.
REPOSITORY = "segcourse/segcourse"
BRANCH = "main"
#: What every lab's setup cell installs on Colab, as one pip requirement: the release of the
#: library the labs were written with (its tag). The one setting to change to install from a
#: package index (``"segcourse[data]==0.1.0"``) or a wheel's URL instead.
INSTALL = f"segcourse[data] @ git+https://github.com/{REPOSITORY}@v{__version__}"


@dataclass(frozen=True)
class Lab:
    """One lab of the course: where its notebooks live and what it teaches. ``topics`` are the
    titles of the notebook's numbered sections, in order, without their numbers."""
    number: int
    slug: str
    title: str
    topics: tuple[str, ...]
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
        ("What semantic segmentation is", "The benchmarks", "The course map"), True),
    Lab(1, "fully_convolutional", "From classifier to fully convolutional network",
        ("A dense layer is a convolution", "A classifier that slides",
         "FCN-32s, 16s, 8s, and why their maps must line up",
         "What the output stride costs: an oracle", "Three FCNs trained side by side",
         "The three FCNs on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(2, "upsampling", "Upsampling and checkerboard artifacts",
        ("Fixed upsamplers", "Interpolation is zero insertion plus a filter",
         "The transposed convolution", "Checkerboard artifacts",
         "Does a trained segmentation network keep the grid?",
         "The three upsamplers on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(3, "receptive_fields", "Receptive fields and dilated convolutions",
        ("The receptive field of a stack", "Why stack 3×3 convolutions?", "Dilated convolutions",
         "The effective receptive field", "Probing the theory"), True),
    Lab(4, "encoder_decoder", "Encoder-decoders: U-Net and SegNet",
        ("The paper U-Net: 572 in, 388 out", "Copy and crop",
         "SegNet: unpooling with the pooling indices",
         "What each decoder receives, and what it costs",
         "U-Net, U-Net without skips and SegNet, trained side by side",
         "The same three on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(5, "context", "Multi-scale context: DeepLab and PSPNet",
        ("Output stride", "ASPP rates follow the output stride", "PSPNet's pyramid of bins",
         "Large rates on a small map", "What the context costs",
         "Output stride 16 against 8, trained side by side",
         "Output stride 16 against 8 on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(6, "metrics_losses", "Measuring segmentation: accuracy, IoU, mIoU, soft IoU loss",
        ("The confusion matrix", "Scores", "Count over the dataset, not per picture",
         "A loss that looks like IoU", "Four losses, one network, the same pictures",
         "The four losses on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(7, "train_diagnose", "Train, look, diagnose",
        ("Cross-entropy with an ignore label", "Augment image and mask together",
         "How many labels does bilinear upsampling invent?", "Train a U-Net",
         "Where it goes wrong", "Real photographs: Oxford-IIIT Pet (GPU profile)"), True),
    Lab(8, "backbones_transfer", "Backbones and transfer",
        ("VGG16's memory and parameters",
         "Three 3 × 3 convolutions or one 7 × 7",
         "ResNet's bottleneck",
         "MobileNet's depthwise-separable convolution",
         "Encoder taps by stride",
         "Freeze, train, unfreeze",
         "ImageNet weights on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(9, "decoders", "Decoders head to head, and DeconvNet",
        ("DeconvNet: VGG16, then its mirror image",
         "Max unpooling by indices",
         "What each decoder keeps from its encoder",
         "Scoring near the boundary",
         "Four decoders at one budget",
         "Checkerboards in the trained outputs",
         "FCN-32s, then 16s, then 8s (GPU profile)"), True),
    Lab(10, "deeplab_lineage", "The DeepLab lineage",
        ("Atrous convolution is a convolution with holes",
         "Output stride 16 for training, 8 for inference", "The fully connected CRF",
         "Multi-scale and flipped inputs", "The lineage on networks trained here",
         "DeepLabV3 and V3+ on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(11, "imbalance_losses", "Imbalance and losses",
        ("Rare by presence, rare by area",
         "The focal loss",
         "Dice and soft IoU: losses shaped like the metric",
         "Six losses, the same pictures",
         "Calibration: can the probabilities be trusted?",
         "Oxford-IIIT Pet: a thin border (GPU profile)"), True),
    Lab(12, "biomedical_unet", "The biomedical U-Net",
        ("Valid convolutions: 572 in, 388 out",
         "Overlap-tile inference with mirror padding",
         "Why tiles and the whole pass disagree: the pooling grid",
         "Elastic deformation, for image and mask alike",
         "The border weight map (eq. 2)",
         "Training with and without the border term",
         "The paper's setting at full size (GPU profile)"), True),
    Lab(13, "instances_panoptic", "Instances and panoptic segmentation",
        ("Instances from a semantic map: connected components",
         "RoIPool and RoIAlign",
         "A mask head on ground-truth boxes",
         "Panoptic quality",
         "What a full Mask R-CNN adds",
         "The mask head on Oxford-IIIT Pet (GPU profile)"), True),
    Lab(14, "evaluation", "Evaluation you can trust",
        ("A dataset's mIoU and its bootstrap interval",
         "The spread over training seeds",
         "The boundary F-score",
         "What is scored: VOC's void, Cityscapes' ids",
         "Seeds and intervals on Oxford-IIIT Pet (GPU profile)"), True),
)


def course_map() -> str:
    """The course map lab 00 prints: each lab's number and title, then its numbered sections."""
    lines = []
    for lab in LABS:
        lines.append(f"{lab.number:02d}  {lab.title}" + ("" if lab.available else "  (planned)"))
        lines += [f"      {n}. {topic}" for n, topic in enumerate(lab.topics, start=1)]
    return "\n".join(lines)
