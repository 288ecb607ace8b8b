"""Parity data for the architecture entries (architectures.py): what each model sees after the
preprocessing its framework pairs with it, generated deterministically like inputs.py's.

    make_inputs(BY_NAME["arch-t-vit"])  ->  {"pixel_values": float32 (8, 3, 224, 224)}

Images are inputs.py's natural-looking photos (uint8 RGB), then, per ``Arch.data``:

- ``pixels-0-255``: NHWC float 0..255, no scaling. keras.applications EfficientNetV2 and ConvNeXt
  (``include_preprocessing=True``: a Rescaling / Normalization layer is the model's first layer) and
  MobileNetV3 (``include_preprocessing=True``: ``Rescaling(scale=1 / 127.5, offset=-1)``); their
  ``preprocess_input`` is the identity ("a placeholder method for backward compatibility").
- ``keras-torch``: NHWC ``(x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``, RGB:
  ``keras.applications.densenet.preprocess_input`` (``imagenet_utils.preprocess_input(mode="torch")``).
- ``keras-tf``: NHWC ``x / 127.5 - 1``: ``nasnet.preprocess_input`` and ``resnet_v2.preprocess_input``
  (``mode="tf"``).
- ``imagenet``: NCHW RGB ``(x / 255 - IMAGENET_DEFAULT_MEAN) / IMAGENET_DEFAULT_STD`` (the values
  above): transformers' LevitImageProcessor and SegformerImageProcessor class defaults, and the
  ImageNet checkpoints' preprocessor configs for Swin and ConvNeXt; GhostNet is trained with it too.
- ``half``: NCHW RGB ``(x / 255 - 0.5) / 0.5``: ViTImageProcessor's defaults
  (``IMAGENET_STANDARD_MEAN`` / ``_STD`` = 0.5).
- ``bgr01``: NCHW **BGR** ``x / 255``, no mean or std: MobileViTImageProcessor (``do_rescale``,
  ``do_flip_channel_order=True``, ``do_normalize`` unset).

Other kinds:

- ``tokens``: int64 WordPiece ids of the bert-base-uncased vocabulary (30522): ``[CLS]`` (101),
  word pieces, a ``[SEP]`` (102) at the end: a sentence that fills the 32 positions (no padding, so no
  attention mask is needed). Word pieces follow Zipf's law over the ids from 1996 (``the``, the first
  whole word) up, with ``,`` (1010) and ``.`` (1012) between clauses.
- ``speech``: 1 s of speech-like 16 kHz float audio (audio_inputs.py), normalized to zero mean and unit
  variance per utterance: Wav2Vec2FeatureExtractor with ``do_normalize=True`` (``(x - mean) /
  sqrt(var + 1e-7)``).
- ``log-mel``: 3-25 s of speech padded with silence to 30 s, through transformers'
  ``WhisperFeatureExtractor()`` (80 mel bins, 25 ms window, 10 ms hop: log10, clamped to 8 below the
  maximum, ``(x + 4) / 4``): (80, 3000).
"""

from __future__ import annotations

import zlib

import numpy as np

from bench.corpus.audio_inputs import SAMPLE_RATE, speech
from bench.corpus.image_inputs import natural, normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CLS, SEP, COMMA, PERIOD, FIRST_WORD, VOCAB = 101, 102, 1010, 1012, 1996, 30522


def make_inputs(arch, n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` samples of ``arch``'s input stacked on the batch axis, in the input's dtype."""
    rng = np.random.default_rng([seed, zlib.crc32(arch.name.encode())])
    generate = GENERATORS[arch.data]
    array = np.stack([generate(arch.shape[1:], rng) for _ in range(n * arch.shape[0])])
    return {arch.input_name: np.ascontiguousarray(array, dtype=np.dtype(arch.dtype))}


def _photo(shape, rng, channels_first: bool) -> np.ndarray:
    height, width = (shape[1], shape[2]) if channels_first else (shape[0], shape[1])
    return natural(height, width, rng).astype(np.float32)


def pixels_0_255(shape, rng):
    return _photo(shape, rng, False)


def keras_torch(shape, rng):
    return normalize(_photo(shape, rng, False), IMAGENET_MEAN, IMAGENET_STD).transpose(1, 2, 0)


def keras_tf(shape, rng):
    return _photo(shape, rng, False) / 127.5 - 1.0


def imagenet(shape, rng):
    return normalize(_photo(shape, rng, True), IMAGENET_MEAN, IMAGENET_STD)


def half(shape, rng):
    return normalize(_photo(shape, rng, True), HALF, HALF)


def bgr01(shape, rng):
    return normalize(_photo(shape, rng, True)[..., ::-1], (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def tokens(shape, rng):
    (length,) = shape
    ranks = np.empty(0, np.int64)
    while len(ranks) < length:  # Zipf's tail beyond the vocabulary is redrawn, not piled onto the last id
        drawn = rng.zipf(1.2, length)
        ranks = np.concatenate([ranks, drawn[drawn <= VOCAB - FIRST_WORD]])
    ids = FIRST_WORD + ranks[:length] - 1
    clause = rng.random(length) < 0.08
    ids[clause] = COMMA
    ids[0], ids[-2], ids[-1] = CLS, PERIOD, SEP
    return ids


def wav2vec2_speech(shape, rng):
    (samples,) = shape
    audio = speech(samples, rng, peak=rng.uniform(0.1, 0.8))
    return (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)


def whisper_log_mel(shape, rng):
    from transformers import WhisperFeatureExtractor

    bins, frames = shape
    extractor = WhisperFeatureExtractor(feature_size=bins)
    seconds = rng.uniform(3, 25)
    audio = speech(int(seconds * SAMPLE_RATE), rng, peak=rng.uniform(0.1, 0.8)).astype(np.float32)
    features = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    if features.shape != (bins, frames):
        raise ValueError(f"WhisperFeatureExtractor gave {features.shape}, the encoder takes {(bins, frames)}")
    return features


GENERATORS = {
    "pixels-0-255": pixels_0_255, "keras-torch": keras_torch, "keras-tf": keras_tf, "imagenet": imagenet,
    "half": half, "bgr01": bgr01, "tokens": tokens, "speech": wav2vec2_speech, "log-mel": whisper_log_mel,
}
