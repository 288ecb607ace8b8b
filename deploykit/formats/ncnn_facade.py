"""The one place deploykit calls the ``ncnn`` Python package (Tencent's NCNN runtime): opening a model with the
options an app would set, running one sample, asking which layer types have a Vulkan implementation.

NCNN's options decide the arithmetic: an fp32 artifact is run with fp16 storage, packing and arithmetic off
(what parity against a float32 source needs), an fp16 artifact with them on, as an app sets them for speed.
On this machine there is no GPU, so every run is on the CPU; ``vulkan_support`` asks the layer registry,
which knows which types have a Vulkan implementation without a device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.core.errors import ConversionError, InputError


def version() -> str:
    import ncnn

    return ncnn.__version__


def open_net(param: Path, weights: Path, *, fp16: bool, threads: int = 1):
    """An ``ncnn.Net`` with the model loaded. ncnn returns non-zero codes instead of raising: they become errors."""
    import ncnn

    net = ncnn.Net()
    options = net.opt
    for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
        setattr(options, flag, fp16)
    options.use_bf16_storage = False
    options.use_vulkan_compute = False
    options.num_threads = threads
    if net.load_param(str(param)) != 0:
        raise InputError(f"ncnn could not load {param}", hint="the .param names a layer type this ncnn does not have, or is damaged")
    if net.load_model(str(weights)) != 0:
        raise InputError(f"ncnn could not load the weights {weights}", hint="the .bin is truncated or belongs to another .param")
    return net


def probe(param: Path, weights: Path, timeout: int = 600) -> str | None:
    """None when ncnn, in a child process, loads the pair and runs it once on zeros of its Input layers' shapes; else
    why not: what ncnn printed (its loader reports on stderr and returns only a code), or how the child ended. A pair
    pnnx wrote can crash ncnn's native code (ViT traced: an SDPA layer corrupts the heap): the child takes the crash,
    not deploykit's process."""
    import signal
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-m", "deploykit.formats.ncnn_facade", str(param), str(weights)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"ncnn did not finish one run on zeros in {timeout} s"
    if done.returncode == 0:
        return None
    said = "; ".join([line.strip() for line in (done.stderr or "").splitlines() if line.strip()][-2:])[:300]
    if done.returncode < 0:
        try:
            how = signal.Signals(-done.returncode).name
        except ValueError:
            how = f"signal {-done.returncode}"
        return f"ncnn crashed ({how}) running it once on zeros" + (f": {said}" if said else "")
    return said or f"ncnn could not load or run it (exit code {done.returncode})"


def _probe(param_file: str, weights_file: str) -> int:
    """The child of ``probe``: load, then one run on zeros; 1 (ncnn's own message on stderr) when either fails."""
    import sys

    from deploykit.formats.ncnn import param

    try:
        graph = param.read(param_file)
        net = open_net(Path(param_file), Path(weights_file), fp16=False)
    except InputError as exc:
        message = exc.message.replace(str(param_file), "the .param").replace(str(weights_file), "the .bin")
        print(message, file=sys.stderr)  # after what ncnn printed, if it was ncnn that refused
        return 1
    shapes = {blob: graph.input_shape(blob) for blob in graph.input_blobs}
    if all(shapes.values()):
        try:
            run(net, {blob: np.zeros(shape, np.float32) for blob, shape in shapes.items()}, graph.output_blobs)
        except ConversionError as exc:
            print(exc.message, file=sys.stderr)
            return 1
    return 0


def run(net, feeds: dict[str, np.ndarray], outputs: tuple[str, ...], keep_all: bool = False) -> dict[str, np.ndarray]:
    """One sample through ``net``: ``feeds`` in ncnn's shapes (no batch axis), float32 (int32 for integer ones).
    ``keep_all``: keep every intermediate blob (ncnn's light mode off), for extracting many of them without
    recomputing."""
    import ncnn

    with net.create_extractor() as extractor:
        if keep_all:
            extractor.set_light_mode(False)
        for name, value in feeds.items():
            value = np.asarray(value)  # integers (token ids for an Embed layer) as int32, the rest as float32
            value = np.ascontiguousarray(value, dtype=np.int32 if value.dtype.kind in "iub" else np.float32)
            if extractor.input(name, ncnn.Mat(value).clone()) != 0:
                raise InputError(f"the NCNN model has no input blob {name!r}")
        results = {}
        for name in outputs:
            code, mat = extractor.extract(name)
            if code != 0:
                raise ConversionError(f"ncnn could not compute blob {name!r} (error {code})",
                                      hint="a layer of the model failed at run time; rerun with --verbose")
            results[name] = np.array(mat, dtype=np.float32, copy=True)
    return results


def vulkan_support(layer_types) -> dict[str, bool | None]:
    """Layer type -> whether this ncnn has a Vulkan implementation of it (None: ncnn does not know the type)."""
    import ncnn

    from deploykit.core.noise import capture_output

    support = {}
    with capture_output():  # the registry may probe for a Vulkan loader and print that it found none
        for kind in layer_types:
            layer = ncnn.create_layer(kind)
            support[kind] = None if layer is None else bool(layer.support_vulkan)
    return support


if __name__ == "__main__":  # the child process of ``probe``
    import sys

    raise SystemExit(_probe(*sys.argv[1:3]))
