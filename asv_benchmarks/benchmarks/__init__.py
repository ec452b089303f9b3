"""asv benchmarks of deepnet_fast: training, prediction, kernels and compilation."""
