"""One module per benchmarked way of training; each runs as ``python -m benchmarks.modes.<name>`` in its own process."""
