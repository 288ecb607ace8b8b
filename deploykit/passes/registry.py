"""Named, registered graph passes: what a report can name exactly, what ``--passes`` selects.

A pass works on one *stage* of a conversion:

- ``source``: the loaded Keras / PyTorch / ONNX model, before any converter sees it;
  ``apply(source, context) -> PassResult``;
- ``tflite``: the fp32 ``.tflite`` flatbuffer, before quantized variants are derived from it;
  ``apply(data: bytes) -> PassResult``;
- ``coreml``: the MIL program inside ``coremltools.convert`` (registered with coremltools' own
  pass registry, run in its pass pipeline); ``apply(pipeline) -> PassResult``;
- ``onnx``: an exact rewrite of an ONNX ``ModelProto`` that a conversion ladder applies as a remedy
  (``converters.onnx2tf_remedies``); ``apply(model) -> nodes changed``, in place;
- ``aten``: an exact rewrite of a ``torch.fx`` ATen graph that an exporter applies
  (``converters.torch_executorch``); ``apply(graph_module) -> nodes changed``, in place.

``--passes`` selects among the first three (``SELECTABLE``); the last two run where their converter
decides, and every record names them. Each pass is a function with a Given/Result docstring, and a
table of the (framework, target) conversion paths where the upstream converter leaves the pattern
in the artifact (``needed_for``). ``--passes auto`` (the default) runs a pass only on those paths;
the table comes from measurements recorded in docs/quantization.md, and the artifact checker
(``deploykit.passes.check``) confirms it for every artifact.

The catalogue of passes is ``deploykit.passes`` (its ``__init__`` imports every pass module, as
``runners/coreml_eval/ops`` does for evaluator ops); this module imports none of them, so a pass
module imports the registry without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from deploykit.core.errors import UsageError

SELECTABLE = ("source", "tflite", "coreml")  # stages --passes chooses for
STAGES = SELECTABLE + ("onnx", "aten")  # rewrites their converters apply


@dataclass(frozen=True)
class PassResult:
    """What one pass changed: the new object and one human-readable item per rewrite."""

    value: Any
    items: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphPass:
    name: str
    stage: str
    apply: Callable[..., PassResult]
    summary: str
    doc: str
    needed_for: frozenset = field(default_factory=frozenset)  # {(framework, target)} or {("*", target)}

    def needed(self, framework: str, target: str) -> bool:
        return (framework, target) in self.needed_for or ("*", target) in self.needed_for


REGISTRY: dict[str, list[GraphPass]] = {}


def register_pass(name: str, *, stage: str, needed_for=(), summary: str = ""):
    """Register ``fn`` as pass ``name`` on ``stage``. One name may have one function per stage
    (``fuse_activation`` rewrites both .tflite files and Core ML programs)."""
    if stage not in STAGES:
        raise ValueError(f"unknown pass stage {stage!r}")

    def wrap(fn):
        doc = (fn.__doc__ or "").strip()
        entry = GraphPass(name, stage, fn, summary or doc.splitlines()[0], doc, frozenset(needed_for))
        REGISTRY.setdefault(name, []).append(entry)
        return fn

    return wrap


def all_passes(selectable_only: bool = False) -> list[GraphPass]:
    """Every registered pass (or only those ``--passes`` can name)."""
    return [p for entries in REGISTRY.values() for p in entries if not selectable_only or p.stage in SELECTABLE]


def names() -> tuple[str, ...]:
    """The names ``--passes`` accepts."""
    return tuple(dict.fromkeys(p.name for p in all_passes(selectable_only=True)))


def get(name: str, stage: str) -> GraphPass:
    """The pass ``name`` registered on ``stage`` (a converter's rewrite, looked up by the name its ladder records)."""
    for entry in REGISTRY.get(name, ()):
        if entry.stage == stage:
            return entry
    raise KeyError(f"no {stage} pass named {name!r}")


@dataclass(frozen=True)
class PassSelection:
    """``--passes``: ``auto`` (only where the converter needs it), ``none``, or explicit names (forced everywhere)."""

    mode: str  # "auto" | "none" | "explicit"
    explicit: tuple[str, ...] = ()

    def for_path(self, framework: str, target: str, stage: str) -> list[GraphPass]:
        if self.mode == "none":
            return []
        chosen = []
        for name, entries in REGISTRY.items():
            for entry in entries:
                if entry.stage != stage or (stage != "source" and stage != target):
                    continue
                if self.mode == "explicit" and name in self.explicit:
                    chosen.append(entry)
                elif self.mode == "auto" and entry.needed(framework, target):
                    chosen.append(entry)
        return chosen

    def to_json(self) -> str:
        return self.mode if self.mode != "explicit" else ",".join(self.explicit)


def parse_passes(value: str | None) -> PassSelection:
    text = (value or "auto").strip().lower()
    if text in ("auto", ""):
        return PassSelection("auto")
    if text == "none":
        return PassSelection("none")
    wanted = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    known = names()
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UsageError(f"unknown pass {', '.join(unknown)}",
                         hint=f"passes are: {', '.join(known)} (or auto, none); `deploykit passes` describes them")
    return PassSelection("explicit", wanted)
