"""Benchmarks for the Hearth engine. Run them all with `python -m bench.run_all` (or `make bench`).

Each benchmark builds its own random Llama model (cached under bench/.cache/), prints its figures as
ratios against a baseline measured in the same run, and returns them as a dict. None of them assert
anything about time: machines are noisy, and the figures are for people to read.
"""
