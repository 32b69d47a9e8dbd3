"""Benchmarks that put TrainLab beside a hand-written loop, HF Trainer and the prototype (``benchmarks/run.py``)."""
