"""lstm, gru and rnn (MIL iOS15 recurrent.py; iOS17 adds fp16, iOS18 adds gru's reset_after).

``x`` is ``[s, b, I]``; weights are ``[G*H, I]`` / ``[G*H, H]`` with MIL's gate order (lstm:
input, forget, output, cell; gru: reset, output, update) and one bias that already sums the
input-hidden and hidden-hidden biases. Where the MIL reference is vague, the rules below follow
coremltools' own numpy references in its recurrent op tests, which are run against Core ML on a Mac
(mil/ops/tests/iOS14/test_recurrent.py):

- ``direction="reverse"`` runs over the time-reversed input and returns the states in the order
  they were computed; the reverse half of a bidirectional lstm is aligned with the input's time
  instead (its state for step t has seen x[t:]), as in PyTorch.
- lstm ``clip`` clips the cell state after each update; peepholes see c[t-1] for the input and
  forget gates and the new c[t] for the output gate.
- gru applies the reset gate to the state before the recurrent product: W_o x + R_o (r * h) + b_o.
- the parametric activations take Core ML's defaults: scaled_tanh is tanh, hard_sigmoid is
  min(max(0.2 x + 0.5, 0), 1) and linear is the identity.
"""

from __future__ import annotations

import numpy as np

from .activation import _sigmoid
from .registry import register

_ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "scaled_tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0),
    "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0, 1),
    "sigmoid_hard": lambda v: np.clip(0.2 * v + 0.5, 0, 1),  # rnn's spelling of hard_sigmoid
    "linear": lambda v: v,
}


def _activation(args, key: str, default: str):
    name = args.string(key, default)
    if name.lower() not in _ACTIVATIONS:
        raise args.unsupported(key, name, f"the evaluator handles {', '.join(sorted(_ACTIVATIONS))}")
    return _ACTIVATIONS[name.lower()]


def _input(args) -> np.ndarray:
    x = args.tensor("x")
    if x.ndim != 3:
        raise args.unsupported("x", x.shape, "a rank-3 [s, b, I] input is expected")
    return x


def _weights(args, x, gates: int, suffix: str = ""):
    """(W_ih^T, W_hh^T, bias) for one direction, checked against x and the gate count."""
    w_ih, w_hh = args.tensor("weight_ih" + suffix), args.tensor("weight_hh" + suffix)
    hidden = w_hh.shape[-1]
    if w_ih.shape != (gates * hidden, x.shape[2]) or w_hh.shape != (gates * hidden, hidden):
        raise args.unsupported("weight_ih" + suffix, w_ih.shape,
                               f"[{gates}*H, I] and [{gates}*H, H] weights for input {x.shape}")
    bias = args.optional("bias" + suffix)
    if bias is None:
        bias = np.zeros(gates * hidden, dtype=x.dtype)
    elif bias.shape != (gates * hidden,):
        raise args.unsupported("bias" + suffix, bias.shape, f"a [{gates}*H] vector")
    return w_ih.T.astype(x.dtype, copy=False), w_hh.T.astype(x.dtype, copy=False), bias.astype(x.dtype, copy=False)


def _state(args, key: str, batch: int, width: int, x):
    state = args.tensor(key).astype(x.dtype, copy=False)
    if state.shape != (batch, width):
        raise args.unsupported(key, state.shape, f"a [b, {width}] state")
    return state


def _sequence_output(args, states: np.ndarray) -> np.ndarray:
    """All steps [s, b, W] if output_sequence, else the last computed step as [1, b, W]."""
    return states if args.scalar("output_sequence", False) else states[-1:]


@register("lstm")
def lstm(args):
    x = _input(args)
    direction = args.string("direction", "forward", choices=("forward", "reverse", "bidirectional"))
    acts = (_activation(args, "recurrent_activation", "sigmoid"), _activation(args, "cell_activation", "tanh"),
            _activation(args, "activation", "tanh"))
    clip = args.scalar("clip", None)
    hidden = args.tensor("weight_hh").shape[-1]
    dirs = 2 if direction == "bidirectional" else 1
    h0 = _state(args, "initial_h", x.shape[1], dirs * hidden, x)
    c0 = _state(args, "initial_c", x.shape[1], dirs * hidden, x)
    runs = [("", x[::-1] if direction == "reverse" else x)]
    if dirs == 2:
        runs.append(("_back", x[::-1]))
    for key in ("weight_ih_back", "weight_hh_back", "bias_back", "peephole_back"):
        if dirs == 1 and args.has(key):  # MIL says they are ignored; a program giving them is confused
            raise args.unsupported(key, "given", f"backward weights mean nothing for direction '{direction}'")
    seqs, hs, cs = [], [], []
    for d, (suffix, xs) in enumerate(runs):
        part = slice(d * hidden, (d + 1) * hidden)
        peephole = args.optional("peephole" + suffix)
        if peephole is not None and peephole.shape != (3 * hidden,):
            raise args.unsupported("peephole" + suffix, peephole.shape, "a [3*H] vector")
        seq, h, c = _lstm_run(xs, h0[:, part], c0[:, part], *_weights(args, x, 4, suffix), peephole, clip, acts)
        seqs.append(seq[::-1] if suffix == "_back" else seq)
        hs.append(h)
        cs.append(c)
    h, c = np.concatenate(hs, axis=-1), np.concatenate(cs, axis=-1)
    # Without output_sequence the output is the final state of every direction (the backward one
    # ends at time 0 of the input), not the last row of the time-aligned sequence.
    return (np.concatenate(seqs, axis=-1) if args.scalar("output_sequence", False) else h[None]), h, c


def _lstm_run(xs, h, c, w_ih, w_hh, bias, peephole, clip, acts):
    recurrent, cell, output = acts
    hidden = h.shape[-1]
    pre = xs @ w_ih + bias  # the input part of every step at once: [s, b, 4H]
    p_i, p_f, p_o = (np.zeros(hidden, xs.dtype),) * 3 if peephole is None else np.split(peephole.astype(xs.dtype), 3)
    out = np.empty(xs.shape[:2] + (hidden,), dtype=xs.dtype)
    for t in range(xs.shape[0]):
        gates = pre[t] + h @ w_hh
        g_i, g_f, g_o, g_z = np.split(gates, 4, axis=-1)
        i, f, z = recurrent(g_i + c * p_i), recurrent(g_f + c * p_f), cell(g_z)
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        h = recurrent(g_o + c * p_o) * output(c)
        out[t] = h
    return out, h, c


@register("gru")
def gru(args):
    x = _input(args)
    direction = args.string("direction", "forward", choices=("forward", "reverse"))
    recurrent, activation = _activation(args, "recurrent_activation", "sigmoid"), _activation(args, "activation", "tanh")
    if args.scalar("reset_after", False):
        # iOS18: the reference gives no formula for it (nor for input_bias), and coremltools'
        # own parity test of it against PyTorch is marked as failing.
        raise args.unsupported("reset_after", True, "only the default reset-before form is specified")
    if args.has("input_bias"):
        raise args.unsupported("input_bias", "given", "its place in the gru formula is not specified")
    w_ih, w_hh, bias = _weights(args, x, 3)
    hidden = w_hh.shape[0]
    h = _state(args, "initial_h", x.shape[1], hidden, x)
    xs = x[::-1] if direction == "reverse" else x
    pre = xs @ w_ih + bias
    r_hh, o_hh, z_hh = np.split(w_hh, 3, axis=-1)
    out = np.empty(xs.shape[:2] + (hidden,), dtype=x.dtype)
    for t in range(xs.shape[0]):
        p_r, p_o, p_z = np.split(pre[t], 3, axis=-1)
        r, z = recurrent(p_r + h @ r_hh), recurrent(p_z + h @ z_hh)
        o = activation(p_o + (r * h) @ o_hh)
        h = (1 - z) * o + z * h
        out[t] = h
    return _sequence_output(args, out), h


@register("rnn")
def rnn(args):
    # h[t] = activation(W_ih x[t] + W_hh h[t-1] + bias)
    x = _input(args)
    direction = args.string("direction", "forward", choices=("forward", "reverse"))
    activation = _activation(args, "activation", "tanh")
    w_ih, w_hh, bias = _weights(args, x, 1)
    h = _state(args, "initial_h", x.shape[1], w_hh.shape[0], x)
    xs = x[::-1] if direction == "reverse" else x
    pre = xs @ w_ih + bias
    out = np.empty(xs.shape[:2] + (h.shape[-1],), dtype=x.dtype)
    for t in range(xs.shape[0]):
        h = activation(pre[t] + h @ w_hh)
        out[t] = h
    return _sequence_output(args, out), h
