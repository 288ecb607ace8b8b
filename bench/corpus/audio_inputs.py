"""Audio parity data for the corpus (bench/corpus/inputs.py dispatches here): speech-like audio for
openWakeWord's melspectrogram, the mel windows and embeddings its embedding and wake-word models see
(computed with the corpus's own models in ONNX Runtime), and Silero VAD's framed audio with its state.
The constants and the wheel files they come from are in inputs.py's docstring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def speech(samples: int, rng, peak: float) -> np.ndarray:
    """Speech-like float audio: voiced syllables (a wandering pitch, 25 harmonics shaped by three
    formants, a raised-cosine syllable envelope), fricative noise bursts, short pauses, room noise."""
    t = np.arange(samples) / SAMPLE_RATE
    out = np.zeros(samples)
    pos = int(rng.integers(0, int(0.08 * SAMPLE_RATE)))
    f0_base = rng.uniform(90, 240)
    while pos < samples:
        length = int(rng.uniform(0.09, 0.28) * SAMPLE_RATE)
        seg = slice(pos, min(samples, pos + length))
        m = seg.stop - seg.start
        tt = t[seg] - t[pos]
        envelope = np.sin(np.pi * np.arange(m) / max(length, 1)) ** 1.5
        if rng.random() < 0.2:  # fricative: noise high-passed by a first difference
            noise = np.diff(rng.normal(0, 1, m + 1))
            out[seg] += 0.3 * envelope * noise
        else:
            f0 = f0_base * (1 + rng.uniform(-0.15, 0.15) + rng.uniform(-0.2, 0.2) * tt / max(tt[-1], 1e-3))
            phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
            formants = (rng.uniform(300, 850), rng.uniform(900, 2300), rng.uniform(2400, 3200))
            voiced = np.zeros(m)
            for k in range(1, 26):
                freq = k * float(np.mean(f0))
                if freq > 7500:
                    break
                gain = sum(np.exp(-0.5 * ((freq - f) / 120.0) ** 2) * w for f, w in zip(formants, (1.0, 0.6, 0.3)))
                voiced += (gain + 0.02) / k ** 0.5 * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
            out[seg] += envelope * voiced * rng.uniform(0.6, 1.0)
        pos += length + int(rng.uniform(0.0, 0.12) * SAMPLE_RATE)
    out /= max(np.abs(out).max(), 1e-9)
    out = out * peak + rng.normal(0, peak * 10 ** (-40 / 20), samples)  # noise floor 40 dB below the peak
    return out


def speech_int16(samples: int, rng) -> np.ndarray:
    """int16 PCM values as float32 (openWakeWord casts int16 audio to float32 without scaling)."""
    audio = speech(samples, rng, peak=rng.uniform(0.15, 0.6) * 32767)
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16).astype(np.float32)


def _oww_session(name: str, models: Path):
    import onnxruntime as ort

    path = models / name / "model.onnx"
    if not path.is_file():  # bench/corpus/build.py builds what inputs.NEEDS names first
        raise FileNotFoundError(f"{path}: build the corpus entry {name} first (python -m bench.corpus.build --only {name})")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _oww_melspec(audio: np.ndarray, session) -> np.ndarray:
    """openWakeWord's _get_melspectrogram: the melspectrogram model, squeezed, then x / 10 + 2."""
    spec = np.squeeze(session.run(None, {session.get_inputs()[0].name: audio[None].astype(np.float32)})[0])
    return spec / 10 + 2


def oww_mel_windows(count: int, shape, rng, models: Path) -> np.ndarray:
    frames, bins = shape[1], shape[2]  # (1, 76, 32, 1)
    mel = _oww_session("oww-melspectrogram", models)
    out = []
    for _ in range(count):
        spec = _oww_melspec(speech_int16(480 + frames * 160, rng), mel)[:frames]
        out.append(spec.reshape(frames, bins, 1))
    return np.stack(out)


def oww_embeddings(count: int, shape, rng, models: Path) -> np.ndarray:
    windows, dim = shape[1], shape[2]  # (1, 16, 96)
    mel = _oww_session("oww-melspectrogram", models)
    embed = _oww_session("oww-embedding", models)
    frames = 76 + (windows - 1) * 8
    out = []
    for _ in range(count):
        spec = _oww_melspec(speech_int16(480 + frames * 160, rng), mel)
        batch = np.stack([spec[i:i + 76] for i in range(0, windows * 8, 8)])[..., None].astype(np.float32)
        features = embed.run(None, {embed.get_inputs()[0].name: batch})[0].reshape(windows, dim)
        out.append(features)
    return np.stack(out)


def silero_inputs(specs: dict, n: int, rng) -> dict[str, np.ndarray]:
    frames, width = specs["input"]  # (4, 576): 4 frames of 64 context + 512 samples
    context = 64
    hop = width - context
    blocks = []
    for _ in range(n):
        audio = speech(frames * hop, rng, peak=rng.uniform(0.1, 0.7)).astype(np.float32)
        chunks = audio.reshape(frames, hop)
        contexts = np.zeros((frames, context), np.float32)  # the first frame of a clip has zero context
        contexts[1:] = chunks[:-1, -context:]
        blocks.append(np.concatenate([contexts, chunks], axis=1))
    data = {"input": np.concatenate(blocks).astype(np.float32)}
    for name in ("h", "c"):
        data[name] = np.zeros((n * specs[name][0],) + tuple(specs[name][1:]), np.float32)
    return data
