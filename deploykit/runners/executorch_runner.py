""".pte programs with the ExecuTorch runtime, in a long-lived child process.

A native crash in the runtime (a segfault in a kernel or a delegate, an abort on a malformed
program) would take the Python process down with it, so deploykit never loads a .pte in its own
process: ``ExecutorchWorker`` starts ``python -m deploykit.runners.executorch_child`` and speaks to
it over its stdin/stdout. A frame is an 8-byte little-endian length, a JSON header, then the raw bytes
of the arrays the header describes (dtype, shape): no pickles cross the pipe. The child moves its
file descriptor 1 onto 2 before it imports anything, so C++ logging cannot corrupt the protocol, and
its stderr goes to a temporary file: the cpuinfo lines the runtime prints at load stay out of the
user's terminal, and the last meaningful lines explain a crash.

The child calls the runtime's pybindings (``executorch.extension.pybindings._C``), the functions
``executorch.runtime`` wraps one for one: importing ``executorch.runtime`` imports
``executorch.exir`` for a warning class, 10-14 s on this machine, paid by every runner. If ``_C``
ever stops exposing them the child falls back to ``executorch.runtime``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence

import numpy as np

from deploykit.core.errors import ConversionError, InputError, UsageError
from deploykit.core.types import TensorSpec
from deploykit.runners.base import Runner
from deploykit.runners.executorch_child import receive_frame, send_frame

# What the runtime prints on every start: cpuinfo probing, the thread pool, torchao's optional CUDA
# kernels, torch's glog-style warnings (I/W/E + MMDD time ...). Kept out of error messages.
_NOISE = re.compile(r"^(\[cpuinfo|\[threadpool\.cpp|Failed to load /.*torchao|[IWE]\d{4} \d\d:\d\d:\d\d)")
DEFAULT_TIMEOUT = 600.0


class RuntimeCrashError(ConversionError):
    """The ExecuTorch runtime's process died (a native crash); deploykit itself carried on."""

    title = "ExecuTorch runtime crashed"


class ExecutorchWorker:
    """The parent's side of one child process that has one .pte loaded.

    ``request(header, arrays)`` sends one command and returns ``(header, arrays)``; a Python error in
    the child comes back as a DeployKitError, a dead child as :class:`RuntimeCrashError`.
    """

    def __init__(self, path, *, threads: int = 1, method: str = "forward", timeout: float = DEFAULT_TIMEOUT):
        self.path = str(path)
        self.threads = threads
        self.method = method
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self._log_path: str | None = None
        self._log_offset = 0
        self.loaded: dict = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> dict:
        """Start the child and load the program; returns the method's metadata (inputs and outputs)."""
        handle, self._log_path = tempfile.mkstemp(prefix="deploykit-executorch-", suffix=".log")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "deploykit.runners.executorch_child"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle,
                                            env=env, start_new_session=True)
        finally:
            os.close(handle)
        try:
            self.loaded, _ = self.request({"op": "load", "path": self.path, "threads": self.threads,
                                           "method": self.method})
        except BaseException:
            self.close(kill=True)
            raise
        return self.loaded

    def request(self, header: dict, arrays: Sequence[np.ndarray] = (), timeout: float | None = None):
        if self.process is None or self.process.poll() is not None:
            raise self._crash("before the request") if self.process is not None else UsageError(
                "the ExecuTorch worker is not running; start() it first")
        self._log_offset = self._log_size()
        try:
            send_frame(self.process.stdin, header, arrays)
        except (BrokenPipeError, OSError):
            raise self._crash(f"while receiving the {header.get('op')} request") from None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            reply, values = receive_frame(self.process.stdout.fileno(), deadline)
        except EOFError:
            raise self._crash(_doing(header)) from None
        except TimeoutError:
            self.close(kill=True)
            raise ConversionError(f"the ExecuTorch runtime did not answer within {self.timeout:.0f} s "
                                  f"{_doing(header)} ({self.path}); its process was stopped",
                                  hint="a hang in a kernel or a delegate; rerun with --verbose to see its log"
                                  ) from None
        if not reply.get("ok"):
            raise self._error(reply)
        return reply, values

    def close(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is not None:
            if not kill and process.poll() is None:
                with contextlib.suppress(Exception):
                    send_frame(process.stdin, {"op": "close"}, ())
                    process.wait(timeout=10)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(Exception):
                    stream.close()
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._log_path)
            self._log_path = None

    def log(self, since_request: bool = False) -> str:
        """The child's stderr without the runtime's start-up noise (cpuinfo, threadpool lines)."""
        if self._log_path is None:
            return ""
        try:
            with open(self._log_path, "rb") as f:
                f.seek(self._log_offset if since_request else 0)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(line for line in text.splitlines() if line.strip() and not _NOISE.match(line))

    def _log_size(self) -> int:
        try:
            return os.path.getsize(self._log_path) if self._log_path else 0
        except OSError:
            return 0

    def _crash(self, doing: str) -> RuntimeCrashError:
        process = self.process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=5)
        how = _exit_description(code)
        log = self.log()
        tail = [line for line in log.splitlines() if not line.startswith("Traceback")][-3:]
        self.close(kill=True)
        detail = f"; its last words: {' | '.join(tail)[:500]}" if tail else ""
        return RuntimeCrashError(
            f"the ExecuTorch runtime's process for {self.path} {how} {doing}{detail}. deploykit itself is unaffected",
            hint="the .pte may be damaged, or use a kernel or delegate that crashes on this machine; export it again, "
                 "or try another --executorch-backend", log=log)

    def _error(self, reply: dict):
        lines = self.log(since_request=True).splitlines()[-4:]
        detail = f" (runtime log: {' | '.join(lines)[:400]})" if lines else ""
        message = f"{reply.get('error', 'the ExecuTorch runtime failed')}{detail}"
        if reply.get("stage") == "load":
            return InputError(f"ExecuTorch cannot load {self.path}: {message}",
                              hint="export the .pte again with deploykit; a program needs the kernels and delegates "
                                   "this runtime was built with")
        if reply.get("stage") == "usage":
            return UsageError(message)
        return ConversionError(f"ExecuTorch failed running {self.path}: {message}",
                               hint="rerun with --verbose to see the runtime's log", log=self.log())


class ExecutorchRunner(Runner):
    """A .pte's method run by the ExecuTorch runtime in a child process.

    ``input_names`` / ``output_names``: the names the source model uses (a .pte stores none); by
    default ``input_0..`` / ``output_0..``. Inputs and outputs keep the program's dtypes; a rank-4
    tensor is NCHW, the PyTorch layout a program keeps at its boundary.
    """

    name = "executorch"

    def __init__(self, path, *, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 threads: int = 1, method: str = "forward", timeout: float = DEFAULT_TIMEOUT):
        super().__init__()
        self.path = str(path)
        self.given_inputs = tuple(input_names) if input_names is not None else None
        self.given_outputs = tuple(output_names) if output_names is not None else None
        self.worker = ExecutorchWorker(path, threads=threads, method=method, timeout=timeout)
        self.notes = (f"ExecuTorch program run by the ExecuTorch runtime ({method}, {threads} thread(s)) in a child "
                      "process; delegated parts run in their backend (XNNPACK on this CPU), the rest in portable "
                      "kernels",)

    @property
    def child_pid(self) -> int | None:
        return self.worker.pid

    def activate_impl(self):
        if not os.path.isfile(self.path):
            raise InputError(f"model not found: {self.path}")
        meta = self.worker.start()
        try:
            inputs = _specs(meta["inputs"], self.given_inputs, "input")
            outputs = _specs(meta["outputs"], self.given_outputs, "output")
        except Exception:
            self.worker.close()
            raise
        return inputs, outputs

    def deactivate_impl(self) -> None:
        self.worker.close()

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        arrays = [np.ascontiguousarray(feeds[spec.name]) for spec in self._inputs]
        _, values = self.worker.request({"op": "run"}, arrays)
        if len(values) != len(self._outputs):
            raise ConversionError(f"{self.path}: the program returned {len(values)} values for "
                                  f"{len(self._outputs)} outputs")
        return {spec.name: value for spec, value in zip(self._outputs, values)}

    def bench(self, warmup: int, runs: int) -> dict:
        """Timings of ``runs`` calls after ``warmup`` calls, on seeded random inputs, measured in the child."""
        reply, _ = self.worker.request({"op": "bench", "warmup": warmup, "runs": runs})
        return reply["bench"]


class CoreMLDelegateRunner(Runner):
    """A .pte that is one Core ML delegate call, checked without Apple hardware: the delegate's embedded
    ML Program is unpacked and run by deploykit's numpy Core ML evaluator, inputs and outputs matched by
    position (the ML Program names them after the exported graph's nodes)."""

    name = "executorch-coreml-numpy"

    def __init__(self, path, *, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 threads: int | None = 1):
        super().__init__()
        self.path = str(path)
        self.given_inputs = tuple(input_names) if input_names is not None else None
        self.given_outputs = tuple(output_names) if output_names is not None else None
        self.threads = threads
        self._folder: str | None = None
        self._inner = None
        self.notes = ("the Core ML delegate's embedded ML Program evaluated with numpy "
                      "(deploykit.runners.coreml_eval); ExecuTorch's Core ML runtime itself runs only on Apple "
                      "hardware",)

    def activate_impl(self):
        from pathlib import Path

        from deploykit.formats.pte.coreml_delegate import extract_coreml_delegate
        from deploykit.runners.coreml_eval import CoreMLEvaluatorRunner

        self._folder = tempfile.mkdtemp(prefix="deploykit-pte-coreml-")
        try:
            package = extract_coreml_delegate(Path(self.path), Path(self._folder))
            self._inner = CoreMLEvaluatorRunner(package, threads=self.threads)
            self._inner.activate()
            ins, outs = self._inner.input_specs, self._inner.output_specs
            inputs = _renamed(ins, self.given_inputs, "input")
            outputs = _renamed(outs, self.given_outputs, "output")
        except Exception:
            self.deactivate_impl()
            raise
        return inputs, outputs

    def deactivate_impl(self) -> None:
        import shutil

        if self._inner is not None:
            self._inner.deactivate()
            self._inner = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        inner_in, inner_out = self._inner.input_specs, self._inner.output_specs
        result = self._inner.infer({inner.name: feeds[outer.name] for inner, outer in zip(inner_in, self._inputs)})
        return {outer.name: result[inner.name] for inner, outer in zip(inner_out, self._outputs)}


def runner_for_pte(path, *, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                   threads: int = 1) -> Runner:
    """The runner that can check ``path`` on this machine: the ExecuTorch runtime (child process), or for a
    Core ML-delegated program the numpy evaluator on its ML Program. UsageError when neither can."""
    from pathlib import Path

    from deploykit.formats.pte.program import split

    where = split(Path(path))
    if "CoreMLBackend" not in where.delegate_calls:
        return ExecutorchRunner(path, input_names=input_names, output_names=output_names, threads=threads)
    if len(where.delegates) == 1 and not where.kernel_calls:
        return CoreMLDelegateRunner(path, input_names=input_names, output_names=output_names, threads=threads)
    raise UsageError(f"{path} is not verified on this machine: its Core ML delegate covers only part of the program, "
                     "and ExecuTorch's Core ML runtime needs Apple hardware",
                     hint="run it on a Mac or an iPhone, or export with --executorch-backend xnnpack to check it here")


def _renamed(specs, names: tuple[str, ...] | None, kind: str) -> tuple[TensorSpec, ...]:
    from dataclasses import replace

    if names is not None and len(names) != len(specs):
        raise UsageError(f"the program has {len(specs)} {kind}(s), {len(names)} name(s) were given")
    names = names or tuple(f"{kind}_{i}" for i in range(len(specs)))
    return tuple(replace(spec, name=name, original_name=spec.name) for spec, name in zip(specs, names))


def _specs(described: list[dict], names: tuple[str, ...] | None, kind: str) -> tuple[TensorSpec, ...]:
    if names is not None and len(names) != len(described):
        raise UsageError(f"the program has {len(described)} {kind}(s), {len(names)} name(s) were given")
    names = names or tuple(f"{kind}_{i}" for i in range(len(described)))
    return tuple(TensorSpec(name, tuple(d["shape"]), d["dtype"], "NCHW" if len(d["shape"]) == 4 else None)
                 for name, d in zip(names, described))


def _doing(header: dict) -> str:
    return {"load": "while loading the program", "run": "while running it",
            "bench": "while timing it"}.get(header.get("op"), "")


def _exit_description(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def coreml_delegate_status(path) -> str:
    """How this machine can check a Core ML-delegated program (ExecuTorch's Core ML runtime needs Apple hardware)."""
    from pathlib import Path

    from deploykit.core.errors import DeployKitError
    from deploykit.formats.pte.coreml_delegate import extract_coreml_delegate

    with tempfile.TemporaryDirectory(prefix="deploykit-coreml-") as folder:
        try:
            package = extract_coreml_delegate(path, Path(folder))
            from deploykit.runners.coreml_eval import load_program

            load_program(package)  # compiles every op: an op the evaluator lacks is found here
        except DeployKitError as exc:
            return (f"not verified on this machine: {exc.message} (ExecuTorch's Core ML delegate runs only on "
                    "Apple hardware)")
        except Exception as exc:
            return (f"not verified on this machine: the delegate's ML Program could not be read "
                    f"({type(exc).__name__}: {str(exc)[:200]})")
    return ("verifiable on this machine: deploykit's numpy Core ML evaluator runs the delegate's embedded ML Program "
            "(ExecuTorch's Core ML delegate itself runs only on Apple hardware)")
