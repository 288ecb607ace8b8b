"""lstm, gru and rnn. PyTorch's nn.LSTM, nn.RNN and nn.GRU go through the torch frontend (which
emits MIL lstm / rnn, and a while_loop for nn.GRU); what that frontend never emits (MIL gru, clip,
peepholes, reverse direction, the other activations) is built in MIL and compared with a numpy
loop written from the MIL formulas, one gate at a time."""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP16_TOL, FP32_TOL, convert_torch, only_output, program_ops, save_mil, seeded

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from deploykit.core.errors import UnsupportedOperatorError  # noqa: E402

S, B, I, H = 5, 2, 3, 4  # sequence, batch, input size, hidden size


class Recurrent(torch.nn.Module):
    """Runs a torch RNN module from zero states and returns every output flattened into one."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out, state = self.layer(x)
        states = state if isinstance(state, tuple) else (state,)
        return torch.cat([out.reshape(-1)] + [s.reshape(-1) for s in states])


TORCH_CASES = [
    ("lstm", lambda: torch.nn.LSTM(I, H), (S, B, I), "lstm"),
    ("lstm_bidirectional_batch_first", lambda: torch.nn.LSTM(I, H, bidirectional=True, batch_first=True), (B, S, I), "lstm"),
    ("lstm_two_layers_no_bias", lambda: torch.nn.LSTM(I, H, num_layers=2, bias=False), (S, B, I), "lstm"),
    # The torch frontend unrolls nn.GRU into a while_loop of linear / sigmoid / tanh ops.
    ("gru_while_loop", lambda: torch.nn.GRU(I, H), (S, B, I), "while_loop"),
    ("gru_two_layers_batch_first", lambda: torch.nn.GRU(I, H, num_layers=2, batch_first=True), (B, S, I), "while_loop"),
    ("rnn_tanh", lambda: torch.nn.RNN(I, H), (S, B, I), "rnn"),
    ("rnn_relu", lambda: torch.nn.RNN(I, H, nonlinearity="relu"), (S, B, I), "rnn"),
]


@pytest.mark.parametrize("name,factory,shape,op", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_torch_recurrent_layers(name, factory, shape, op, tmp_path):
    from deploykit.runners.coreml_eval import evaluate

    torch.manual_seed(0)
    module = Recurrent(factory()).eval()
    x = seeded(shape)
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    path = convert_torch(module, torch.from_numpy(x), tmp_path / f"{name}.mlpackage")
    assert op in program_ops(path)
    np.testing.assert_allclose(only_output(evaluate(path, {"x": x})), reference, **FP32_TOL)


def test_torch_lstm_fp16_ios17(tmp_path):
    """iOS17 lets lstm itself run in fp16; its outputs are rounded to fp16."""
    from deploykit.runners.coreml_eval import evaluate, load_program

    torch.manual_seed(0)
    module = Recurrent(torch.nn.LSTM(I, H)).eval()
    x = seeded((S, B, I))
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    path = convert_torch(module, torch.from_numpy(x), tmp_path / "lstm16.mlpackage", precision="fp16", target="iOS17")
    lstm_op = next(s for s in load_program(path).steps if s.type == "lstm")
    assert lstm_op.outputs[0].dtype.name == "fp16"
    out = only_output(evaluate(path, {"x": x}))
    np.testing.assert_allclose(out.astype(np.float32), reference, **FP16_TOL)


# -- numpy references, gate by gate ---------------------------------------------------------------
def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


ACT = {"sigmoid": _sigmoid, "tanh": np.tanh, "relu": lambda v: np.maximum(v, 0),
       "scaled_tanh": np.tanh, "linear": lambda v: v,
       "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0, 1)}


def _lstm_ref(x, h, c, w_ih, w_hh, b, p, clip, acts):
    """One direction over x in the given order; MIL gate order i, f, o, z (z is the cell gate)."""
    f_act, g_act, h_act = (ACT[a] for a in acts)
    wi, wf, wo, wz = np.split(w_ih, 4)
    ri, rf, ro, rz = np.split(w_hh, 4)
    bi, bf, bo, bz = np.split(b, 4)
    pi, pf, po = np.split(p, 3)
    outs = []
    for xt in x:
        i = f_act(xt @ wi.T + h @ ri.T + bi + c * pi)
        f = f_act(xt @ wf.T + h @ rf.T + bf + c * pf)
        z = g_act(xt @ wz.T + h @ rz.T + bz)
        c = np.clip(f * c + i * z, -clip, clip)
        o = f_act(xt @ wo.T + h @ ro.T + bo + c * po)
        h = o * h_act(c)
        outs.append(h)
    return np.stack(outs), h, c


def _gru_ref(x, h, w_ih, w_hh, b, acts):
    """MIL gate order r, o, z; the reset gate scales the state before its product with R_o."""
    f_act, g_act = (ACT[a] for a in acts)
    wr, wo, wz = np.split(w_ih, 3)
    rr, ro, rz = np.split(w_hh, 3)
    br, bo, bz = np.split(b, 3)
    outs = []
    for xt in x:
        r = f_act(xt @ wr.T + h @ rr.T + br)
        z = f_act(xt @ wz.T + h @ rz.T + bz)
        o = g_act(xt @ wo.T + (r * h) @ ro.T + bo)
        h = (1 - z) * o + z * h
        outs.append(h)
    return np.stack(outs), h


def _weights(seed, gates, extra=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, shape).astype(np.float32)
            for shape in [(gates * H, I), (gates * H, H), (gates * H,), (3 * H,)][:3 + extra]]


def _evaluate(build, path, *feeds, target="iOS16"):
    from deploykit.runners.coreml_eval import evaluate

    names = build.__code__.co_varnames[:build.__code__.co_argcount]
    save_mil(build, [f.shape for f in feeds], path, target=target)
    outputs = evaluate(path, dict(zip(names, feeds)))
    return list(outputs.values())


LSTM_CASES = {
    # (direction, output_sequence, clip, activations (recurrent, cell, output))
    "forward_clip_active": ("forward", True, 0.3, ("sigmoid", "tanh", "tanh")),
    "reverse_last_step": ("reverse", False, None, ("sigmoid", "tanh", "tanh")),
    "other_activations": ("forward", True, None, ("hard_sigmoid", "linear", "scaled_tanh")),
    "relu_output": ("reverse", True, 0.5, ("sigmoid", "tanh", "relu")),
}


@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_lstm_with_peepholes(case, tmp_path):
    direction, sequence, clip, acts = LSTM_CASES[case]
    w_ih, w_hh, b, p = _weights(1, 4, extra=1)
    x, h0, c0 = seeded((S, B, I), 2), seeded((B, H), 3), seeded((B, H), 4)

    def build(x, h0, c0):
        kwargs = dict(x=x, initial_h=h0, initial_c=c0, weight_ih=w_ih, weight_hh=w_hh, bias=b, peephole=p,
                      direction=direction, output_sequence=sequence, recurrent_activation=acts[0],
                      cell_activation=acts[1], activation=acts[2])
        if clip is not None:
            kwargs["clip"] = np.float32(clip)
        return mb.lstm(**kwargs)

    y, h, c = _evaluate(build, tmp_path / "lstm.mlpackage", x, h0, c0)
    ys, h_ref, c_ref = _lstm_ref(x[::-1] if direction == "reverse" else x, h0, c0, w_ih, w_hh, b, p,
                                 np.inf if clip is None else clip, acts)
    if clip is not None:  # the clip is active: without it the outputs would differ
        unclipped = _lstm_ref(x[::-1] if direction == "reverse" else x, h0, c0, w_ih, w_hh, b, p, np.inf, acts)[0]
        assert np.abs(unclipped - ys).max() > 1e-2
    np.testing.assert_allclose(y, ys if sequence else ys[-1:], **FP32_TOL)
    np.testing.assert_allclose(h, h_ref, **FP32_TOL)
    np.testing.assert_allclose(c, c_ref, **FP32_TOL)


@pytest.mark.parametrize("sequence", [True, False])
def test_bidirectional_lstm(sequence, tmp_path):
    """The backward half runs over the reversed input but is returned aligned with input time."""
    fwd, back = _weights(5, 4, extra=1), _weights(6, 4, extra=1)
    x, h0, c0 = seeded((S, B, I), 7), seeded((B, 2 * H), 8), seeded((B, 2 * H), 9)

    def build(x, h0, c0):
        return mb.lstm(x=x, initial_h=h0, initial_c=c0, weight_ih=fwd[0], weight_hh=fwd[1], bias=fwd[2],
                       peephole=fwd[3], weight_ih_back=back[0], weight_hh_back=back[1], bias_back=back[2],
                       peephole_back=back[3], direction="bidirectional", output_sequence=sequence)

    y, h, c = _evaluate(build, tmp_path / "bilstm.mlpackage", x, h0, c0)
    acts = ("sigmoid", "tanh", "tanh")
    yf, hf, cf = _lstm_ref(x, h0[:, :H], c0[:, :H], *fwd, np.inf, acts)
    yb, hb, cb = _lstm_ref(x[::-1], h0[:, H:], c0[:, H:], *back, np.inf, acts)
    expected = np.concatenate([yf, yb[::-1]], axis=-1) if sequence else np.concatenate([hf, hb], axis=-1)[None]
    np.testing.assert_allclose(y, expected, **FP32_TOL)
    np.testing.assert_allclose(h, np.concatenate([hf, hb], axis=-1), **FP32_TOL)
    np.testing.assert_allclose(c, np.concatenate([cf, cb], axis=-1), **FP32_TOL)


@pytest.mark.parametrize("direction,sequence,acts", [
    ("forward", True, ("sigmoid", "tanh")),
    ("reverse", False, ("sigmoid", "tanh")),
    ("forward", False, ("tanh", "sigmoid")),
])
def test_gru(direction, sequence, acts, tmp_path):
    w_ih, w_hh, b = _weights(10, 3)
    x, h0 = seeded((S, B, I), 11), seeded((B, H), 12)

    def build(x, h0):
        return mb.gru(x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=b, direction=direction,
                      output_sequence=sequence, recurrent_activation=acts[0], activation=acts[1])

    y, h = _evaluate(build, tmp_path / "gru.mlpackage", x, h0)
    ys, h_ref = _gru_ref(x[::-1] if direction == "reverse" else x, h0, w_ih, w_hh, b, acts)
    np.testing.assert_allclose(y, ys if sequence else ys[-1:], **FP32_TOL)
    np.testing.assert_allclose(h, h_ref, **FP32_TOL)


def test_rnn_reverse_sigmoid(tmp_path):
    w_ih, w_hh, b = _weights(13, 1)
    x, h0 = seeded((S, B, I), 14), seeded((B, H), 15)

    def build(x, h0):
        return mb.rnn(x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=b, direction="reverse",
                      output_sequence=True, activation="sigmoid")

    y, h = _evaluate(build, tmp_path / "rnn.mlpackage", x, h0)
    state, expected = h0, []
    for xt in x[::-1]:
        state = _sigmoid(xt @ w_ih.T + state @ w_hh.T + b)
        expected.append(state)
    np.testing.assert_allclose(y, np.stack(expected), **FP32_TOL)
    np.testing.assert_allclose(h, state, **FP32_TOL)


def test_gru_fp16_rounds_its_outputs(tmp_path):
    """iOS17 fp16 gru: computed in float32, both results rounded to fp16."""
    w_ih, w_hh, b = (w.astype(np.float16) for w in _weights(16, 3))
    x, h0 = seeded((S, B, I), 17), seeded((B, H), 18)

    def build(x, h0):
        return mb.gru(x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=b, output_sequence=True)

    from deploykit.runners.coreml_eval import evaluate

    save_mil(build, [((S, B, I), types.fp16), ((B, H), types.fp16)], tmp_path / "gru16.mlpackage", target="iOS17")
    y, h = evaluate(tmp_path / "gru16.mlpackage", {"x": x, "h0": h0}).values()
    assert y.dtype == h.dtype == np.float16
    ys, h_ref = _gru_ref(x.astype(np.float16).astype(np.float32), h0.astype(np.float16).astype(np.float32),
                         w_ih.astype(np.float32), w_hh.astype(np.float32), b.astype(np.float32), ("sigmoid", "tanh"))
    np.testing.assert_allclose(y.astype(np.float32), ys, atol=1e-3, rtol=1e-3)  # one fp16 rounding, 2**-11


def test_gru_reset_after_is_refused(tmp_path):
    w_ih, w_hh, b = _weights(19, 3)

    def build(x, h0):
        return mb.gru(x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=b, reset_after=True)

    with pytest.raises(UnsupportedOperatorError, match="reset_after"):
        _evaluate(build, tmp_path / "gru18.mlpackage", seeded((S, B, I)), seeded((B, H)), target="iOS18")
