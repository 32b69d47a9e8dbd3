"""The `trainlab` command and what each subcommand runs: train (and its launcher), eval, predict, demo."""
