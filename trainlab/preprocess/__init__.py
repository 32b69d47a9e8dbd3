"""Data preparation commands: ``python -m trainlab.preprocess.stackoverflow`` (Kaggle CSV -> splits on disk)
and ``python -m trainlab.preprocess.sample_data`` (a synthetic sample CSV in the Kaggle schema)."""
