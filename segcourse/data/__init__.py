"""Datasets: the embedded ``shapes`` default, real loaders, their palettes, and facts about public
benchmarks."""
