"""Evaluation of AMT-format models (issue 7): likelihood against n-gram baselines, and the
musical statistics of generated pieces against the validation pieces. ``tutti eval`` prints it."""
