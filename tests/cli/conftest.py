"""Fixtures: the probe networks of tests/passes (the quantize flags are tried on them)."""

from tests.passes.fixtures import keras_probe_file, torch_probe_files  # noqa: F401
