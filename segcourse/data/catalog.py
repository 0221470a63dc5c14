"""Facts about the segmentation benchmarks the course mentions (for the labs' tables).

Class counts are the ones the official benchmarks *evaluate*; the notes say where papers use
other counts. Image counts are the public splits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One segmentation benchmark as the lecture's table describes it."""
    name: str
    year: int
    scenes: str
    classes: int
    images: str
    note: str


BENCHMARKS = (
    Benchmark("PASCAL VOC 2012", 2012, "objects in everyday photos", 21,
              "1,464 train / 1,449 val / 1,456 test (10,582 train with SBD)",
              "20 object classes + background; object boundaries labelled 255 = ignore"),
    Benchmark("PASCAL Context", 2014, "whole-scene labels for VOC 2010", 59,
              "4,998 train / 5,105 val",
              "459 labels in all; the usual benchmark keeps the 59 most frequent (+ background)"),
    Benchmark("COCO", 2014, "objects in context", 80,
              "118k train / 5k val (2017)",
              "80 thing classes with instance masks; COCO-Stuff adds 91 stuff classes (171)"),
    Benchmark("Cityscapes", 2016, "street scenes, 50 cities", 19,
              "2,975 train / 500 val / 1,525 test fine; 20,000 coarse",
              "30 classes defined, 19 evaluated; 2048×1024 images"),
    Benchmark("ADE20K", 2017, "indoor and outdoor scenes", 150,
              "20,210 train / 2,000 val",
              "SceneParsing benchmark: the 150 most frequent of 3,000+ labels"),
    Benchmark("Mapillary Vistas", 2017, "street-level images worldwide", 66,
              "18,000 train / 2,000 val / 5,000 test",
              "66 classes in v1.2 (124 in v2.0)"),
    Benchmark("SUN RGB-D", 2015, "indoor RGB-D scenes", 37,
              "5,285 train / 5,050 test",
              "colour + depth; 37 indoor classes"),
)


def benchmark(name: str) -> Benchmark:
    """Look a benchmark up by name (case-insensitive)."""
    for item in BENCHMARKS:
        if item.name.lower() == name.lower():
            return item
    names = ", ".join(b.name for b in BENCHMARKS)
    raise ValueError(f"unknown benchmark {name!r}; the catalog has: {names}.")
