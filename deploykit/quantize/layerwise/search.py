"""The smallest per-layer assignment within a budget.

1. **Sensitivity.** Each layer is compressed alone with each choice (the rest as the reference artifact
   stores it) and the output noise it causes is measured on a few validation samples (``metric.noise``).
2. **The path.** Per layer, the choices form a curve of (bytes, noise); moving a layer one step down its
   lower convex hull saves bytes for added noise. Taking moves in order of bytes saved per noise added,
   across all layers, gives one path from the reference (nothing compressed) to everything at the smallest
   choice: for an additive noise model it is the Lagrangian optimum for every budget, the classic
   bit-allocation argument (Shoham & Gersho 1988) that HAWQ-style mixed-precision searches use.
3. **Bisection on the path.** Each probed prefix is run as a whole on every validation sample (the
   emulated assignment on the artifact's own runtime) and judged by the real budget measure; the longest
   prefix within the budget is the choice. Noise does not add exactly, so the measure, not the model, decides.
3b. **Past the first miss.** The move that crossed the budget is often one layer the noise model misjudged, with
   harmless moves behind it (PP-OCRv4's recogniser, TFLite: move 63 of 130 took the agreement loss from 0.26 to
   1.03 points). The rest of the path is tried in blocks without that layer: a block within the budget is kept,
   one that misses is halved, a single move that misses drops its layer's remaining moves. At most
   ``REFINE_EVALUATIONS`` evaluations.
4. The target then makes that assignment for real and checks it on the validation samples; if the real
   artifact misses the budget (its scales or tables differ slightly from the emulation), the search steps back
   along the path.

Every probed assignment, and every single-scheme assignment, is a ``Candidate`` for the report's Pareto plot.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from deploykit.quantize.layerwise import metric
from deploykit.quantize.layerwise.choices import Choice

SENSITIVITY_SAMPLES = 4
STEP_BACKS = 4
REFINE_EVALUATIONS = 24


@dataclass(frozen=True)
class Candidate:
    label: str
    assignment: tuple[tuple[str, str], ...]  # (layer, choice) for every layer
    weight_bytes: int
    cost: float  # the budget's measure, emulated (or measured on the made artifact when ``made``)
    within: bool
    made: bool = False
    size: int | None = None  # bytes of the made artifact

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for _, choice in self.assignment:
            counted[choice] = counted.get(choice, 0) + 1
        return counted

    def to_json(self) -> dict:
        return {"label": self.label, "weight_bytes": self.weight_bytes, "cost": round(self.cost, 6),
                "within": self.within, "made": self.made, "size": self.size, "choices": self.counts()}


@dataclass
class Search:
    layers: object  # layers.TFLiteLayers / CoreMLLayers
    choices: tuple[Choice, ...]  # largest first; the first is the reference's own storage
    validation: metric.Validation
    budget: metric.Budget
    sensitivity: dict[str, dict[str, float]] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)  # (layer, choice it moves to), in path order
    seconds: dict[str, float] = field(default_factory=dict)
    _emulated: dict = field(default_factory=dict)
    _order: dict = field(default_factory=dict)

    # -- measuring -------------------------------------------------------------------------------------
    def emulated(self, layer, choice: Choice) -> np.ndarray:
        key = (layer.name, choice.name)
        if key not in self._emulated:
            self._emulated[key] = choice.emulate(self.layers.weight(layer.name), layer.axis)
        return self._emulated[key]

    def measure_sensitivity(self) -> dict[str, dict[str, float]]:
        started = time.perf_counter()
        feeds = list(self.validation.feeds[:SENSITIVITY_SAMPLES])
        reference = list(self.validation.reference[:SENSITIVITY_SAMPLES])
        for index, layer in enumerate(self.layers.layers):
            self.sensitivity[layer.name] = {self.choices[0].name: 0.0}
            for choice in self.choices[1:]:
                if not self.layers.allows(layer, choice.name):
                    continue
                outputs = self.layers.run({layer.name: self.emulated(layer, choice)}, feeds)
                self.sensitivity[layer.name][choice.name] = metric.noise(reference, outputs)
        self.seconds["sensitivity"] = round(time.perf_counter() - started, 2)
        return self.sensitivity

    def evaluate(self, assignment: dict[str, str], label: str) -> Candidate:
        by_name = {c.name: c for c in self.choices}
        replaced = {layer.name: self.emulated(layer, by_name[assignment[layer.name]])
                    for layer in self.layers.layers if assignment[layer.name] != self.choices[0].name}
        outputs = self.layers.run(replaced, list(self.validation.feeds))
        cost = metric.cost(self.budget, self.validation, outputs)
        candidate = Candidate(label, tuple((layer.name, assignment[layer.name]) for layer in self.layers.layers),
                              self.weight_bytes(assignment), cost, metric.within(self.budget, cost))
        self.candidates.append(candidate)
        return candidate

    def weight_bytes(self, assignment: dict[str, str]) -> int:
        by_name = {c.name: c for c in self.choices}
        return sum(by_name[assignment[layer.name]].stored_bytes(layer.elements, layer.channels) for layer in self.layers.layers)

    # -- the path ----------------------------------------------------------------------------------------
    def plan_path(self) -> list[tuple[str, str]]:
        """Moves in order of bytes saved per noise added (each layer along its lower convex hull)."""
        heap, position = [], {}
        self._order = {layer.name: index for index, layer in enumerate(self.layers.layers)}
        for layer in self.layers.layers:
            position[layer.name] = 0
            self._push(heap, layer, 0)
        # ties (equal slopes) go in layer order, so the path is the same on every run
        by_layer = {layer.name: layer for layer in self.layers.layers}
        moves = []
        while heap:
            _, _, name, target = heapq.heappop(heap)
            moves.append((name, self.choices[target].name))
            position[name] = target
            self._push(heap, by_layer[name], target)
        self.moves = moves
        return moves

    def _push(self, heap, layer, current: int) -> None:
        noise = self.sensitivity[layer.name]
        here_bytes = self.choices[current].stored_bytes(layer.elements, layer.channels)
        here_noise = noise[self.choices[current].name]
        best = None
        for target in range(current + 1, len(self.choices)):
            if not self.layers.allows(layer, self.choices[target].name):
                continue
            saved = here_bytes - self.choices[target].stored_bytes(layer.elements, layer.channels)
            if saved <= 0:
                continue
            added = max(noise[self.choices[target].name] - here_noise, 1e-12)
            slope = saved / added
            if best is None or slope > best[0]:
                best = (slope, target)
        if best is not None:
            heapq.heappush(heap, (-best[0], self._order[layer.name], layer.name, best[1]))

    def assignment_at(self, steps: int) -> dict[str, str]:
        return self.apply(self.moves[:steps])

    def longest_within(self) -> tuple[int, Candidate]:
        """Bisection for the longest prefix of the path whose emulated assignment keeps to the budget."""
        started = time.perf_counter()
        low, high = 0, len(self.moves)
        last = self.evaluate(self.assignment_at(high), f"path {high}/{len(self.moves)}")
        if last.within:
            self.seconds["path"] = round(time.perf_counter() - started, 2)
            return high, last
        best = self.evaluate(self.assignment_at(0), f"path 0/{len(self.moves)}")
        while high - low > 1:
            middle = (low + high) // 2
            probe = self.evaluate(self.assignment_at(middle), f"path {middle}/{len(self.moves)}")
            if probe.within:
                low, best = middle, probe
            else:
                high = middle
        self.seconds["path"] = round(time.perf_counter() - started, 2)
        return low, best

    def refine(self, steps: int, best: Candidate) -> tuple[list[tuple[str, str]], Candidate]:
        """(the moves kept, the best candidate): the prefix of ``steps`` moves, then the rest of the path without the
        layers whose move missed the budget (3b above)."""
        started = time.perf_counter()
        kept = list(self.moves[:steps])
        if steps >= len(self.moves):
            return kept, best
        dropped = {self.moves[steps][0]}
        pending = [m for m in self.moves[steps + 1:] if m[0] not in dropped]
        block, evaluations = len(pending), 0
        while pending and evaluations < REFINE_EVALUATIONS:
            trial = pending[:block]
            evaluations += 1
            probe = self.evaluate(self.apply(kept + trial), f"refine +{len(kept) + len(trial) - steps}")
            if probe.within:
                kept, best, pending = kept + trial, probe, pending[block:]
                block = len(pending)
            elif block == 1:
                dropped.add(trial[0][0])
                pending = [m for m in pending[1:] if m[0] not in dropped]
                block = len(pending)
            else:
                block //= 2
        self.seconds["refine"] = round(time.perf_counter() - started, 2)
        return kept, best

    def apply(self, moves) -> dict[str, str]:
        chosen = {layer.name: self.choices[0].name for layer in self.layers.layers}
        for name, choice in moves:
            chosen[name] = choice
        return chosen

    def single_schemes(self) -> list[Candidate]:
        """Every layer at one choice: the single-scheme points beside the search's on the Pareto plot."""
        return [self.evaluate({layer.name: self.nearest(layer, choice) for layer in self.layers.layers}, f"all {choice.name}")
                for choice in self.choices[1:]]

    def nearest(self, layer, choice: Choice) -> str:
        """``choice``, or the smallest larger one the engine makes for this layer."""
        index = self.choices.index(choice)
        while index > 0 and not self.layers.allows(layer, self.choices[index].name):
            index -= 1
        return self.choices[index].name


def step_back(steps: int) -> int:
    """The next prefix to try when the made artifact misses the budget: a tenth of the way back, at least one move."""
    return max(0, steps - max(1, steps // 10))
