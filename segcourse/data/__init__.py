"""Datasets: the embedded ``shapes`` default, real loaders, and facts about public benchmarks."""
