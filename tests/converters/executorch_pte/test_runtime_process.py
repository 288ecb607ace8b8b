"""The runtime lives in a child process: its crash is a readable error, a damaged file an InputError."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from deploykit.core.errors import InputError
from tests.converters.executorch_pte.helpers import seeded_feeds


def test_a_killed_runtime_process_is_reported_and_deploykit_carries_on(pte):
    from deploykit.runners.executorch_runner import ExecutorchRunner, RuntimeCrashError

    source, record, _ = pte("mobilenet")
    feeds = seeded_feeds(source)
    runner = ExecutorchRunner(record.path, input_names=["x"], output_names=["output"])
    with runner:
        first = runner.infer(feeds)["output"]
        os.kill(runner.child_pid, signal.SIGSEGV)
        with pytest.raises(RuntimeCrashError) as caught:
            runner.infer(feeds)
    assert "was killed by SIGSEGV while running it" in caught.value.message
    assert "deploykit itself is unaffected" in caught.value.message
    assert caught.value.exit_code == 3
    with ExecutorchRunner(record.path, input_names=["x"], output_names=["output"]) as again:
        np.testing.assert_array_equal(again.infer(feeds)["output"], first)


def test_the_runtime_start_up_noise_stays_in_the_child(pte, capfd):
    from deploykit.runners.executorch_runner import ExecutorchRunner

    source, record, _ = pte("mobilenet")
    with ExecutorchRunner(record.path) as runner:
        runner.infer({"input_0": seeded_feeds(source)["x"]})
        assert "cpuinfo" not in runner.worker.log()  # filtered from what an error would quote
    captured = capfd.readouterr()
    assert "cpuinfo" not in captured.err and "cpuinfo" not in captured.out


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_a_truncated_pte_is_an_input_error(pte, tmp_path, keep):
    from deploykit.inspection.executorch_graph import inspect, split
    from deploykit.runners.executorch_runner import ExecutorchRunner

    _, record, _ = pte("mobilenet")
    data = open(record.path, "rb").read()
    cut = tmp_path / "cut.pte"
    cut.write_bytes(data[:int(len(data) * keep)])
    for read in (inspect, split):
        with pytest.raises(InputError, match="damaged or truncated|not a readable ExecuTorch program"):
            read(cut)
    with pytest.raises(InputError, match="ExecuTorch cannot load"):
        with ExecutorchRunner(cut):
            pass


def test_a_file_that_is_not_a_pte_is_an_input_error(tmp_path):
    from deploykit.inspection.executorch_graph import inspect

    fake = tmp_path / "model.pte"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a program")
    with pytest.raises(InputError, match="not an ExecuTorch program"):
        inspect(fake)
