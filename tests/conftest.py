"""Suite-wide options: GPU tests are opt-in.

Tests marked ``gpu`` need a CUDA device. Without ``--run-gpu`` they are deselected (the
summary says how many, and how to run them); with it, a machine without CUDA is an error,
not a silent skip.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-gpu",
        action="store_true",
        help="also run the tests marked gpu (needs a CUDA device)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--run-gpu"):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--run-gpu was given but torch sees no CUDA device")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-gpu"):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if item.get_closest_marker("gpu") is None]
    config.stash[_GPU_DESELECTED] = len(gpu)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    count = config.stash.get(_GPU_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} GPU test(s) deselected: run `pytest -m gpu --run-gpu` on a CUDA machine"
        )


_GPU_DESELECTED = pytest.StashKey[int]()
