"""Corpus entries built from code: published architectures with seeded random weights.

The wheel entries (sources.py) are what real projects ship; these cover the architectures a user brings
from the frameworks themselves: ``keras.applications``, ``transformers`` models made from a small config
(nothing is downloaded), and a GhostNet written here in plain torch. Each is built seeded, its batch
norms calibrated on the entry's own kind of input (arch_build.py says why), and saved in the formats a
user would hand deploykit: ``model.keras`` or ``model.pt2``, and for some also ONNX: from torch's two
exporters (``model.onnx``: the TorchScript-based one, ``dynamo=False, opset_version=17``, as the MTCNN
entries' ``model.onnx``; ``model-dynamo.onnx``: ``dynamo=True``) or from tf2onnx (``model.onnx``).
``Entry.formats`` lists the ``model.<format>`` files (what tests/corpus reads); ``entry.json`` ``files``
lists them all, ``model-dynamo.onnx`` included.

``data`` names the preprocessing the architecture expects (arch_inputs.py generates it and quotes
where each constant comes from). Shapes are batch 1, the entry's documented size; Keras inputs are
NHWC, everything else NCHW / (batch, length).
"""

from __future__ import annotations

from dataclasses import dataclass

KERAS, TORCH = "keras", "torch"
TS, DYNAMO, TF2ONNX = "ts", "dynamo", "tf2onnx"
ONNX_FILES = {TS: "model.onnx", DYNAMO: "model-dynamo.onnx", TF2ONNX: "model.onnx"}


@dataclass(frozen=True)
class Arch:
    name: str  # corpus entry name
    source: str  # KERAS | TORCH: which framework builds it
    builder: str  # "module:function" in bench.corpus (arch_keras, arch_torch, arch_transformers): shape -> model
    input_name: str  # the source model's input name (the forward parameter / keras.Input name)
    shape: tuple[int, ...]
    data: str  # preprocessing kind, a key of arch_inputs.GENERATORS
    dtype: str = "float32"
    onnx: tuple[str, ...] = ()  # ONNX exporters to run besides the native file: TS, DYNAMO (torch), TF2ONNX (Keras)
    output_names: tuple[str, ...] = ("logits",)
    notes: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        native = "model.keras" if self.source == KERAS else "model.pt2"
        return (native,) + tuple(ONNX_FILES[exporter] for exporter in self.onnx)

    @property
    def formats(self) -> tuple[str, ...]:
        """The ``model.<format>`` files (``Entry.formats``); ``model-dynamo.onnx`` is in ``files`` only."""
        return tuple(f.removeprefix("model.") for f in self.files if f.startswith("model."))

    @property
    def input_value(self) -> str:
        """The ``--input`` value (what ``deploykit convert`` is told for the ONNX files)."""
        return f"{self.input_name}=" + "x".join(map(str, self.shape))


def _keras(name, builder, size, data, notes, onnx=()):
    return Arch(name, KERAS, f"arch_keras:{builder}", "image", (1, size, size, 3), data, onnx=onnx,
                output_names=("predictions",), notes=notes)


def _vision(name, builder, size, data, notes, onnx=(), outputs=("logits",)):
    module = "arch_torch" if builder == "ghostnet" else "arch_transformers"
    return Arch(name, TORCH, f"{module}:{builder}", "pixel_values", (1, 3, size, size), data, onnx=onnx,
                output_names=outputs, notes=notes)


ARCHITECTURES: tuple[Arch, ...] = (
    # keras.applications, weights=None, 0-255 pixels where the application has its preprocessing built in
    _keras("arch-k-efficientnetv2b0", "efficientnetv2b0", 224, "pixels-0-255",
           "Keras EfficientNetV2-B0 (include_preprocessing: Rescaling + Normalization first; MBConv, SE, swish)",
           onnx=(TF2ONNX,)),
    _keras("arch-k-convnext-tiny", "convnext_tiny", 224, "pixels-0-255",
           "Keras ConvNeXt-Tiny (Normalization first; 7x7 depthwise, LayerNorm, GELU, layer scale)"),
    _keras("arch-k-mobilenetv3small", "mobilenetv3small", 224, "pixels-0-255",
           "Keras MobileNetV3-Small (Rescaling first; hard-swish, SE with hard-sigmoid)", onnx=(TF2ONNX,)),
    _keras("arch-k-densenet121", "densenet121", 224, "keras-torch",
           "Keras DenseNet-121 (dense blocks: 58 concatenations; torch-mode preprocess_input)"),
    _keras("arch-k-nasnetmobile", "nasnetmobile", 224, "keras-tf",
           "Keras NASNet-Mobile (searched cells: separable convs, cropping, 192 batch norms; tf-mode "
           "preprocess_input)"),
    _keras("arch-k-resnet50v2", "resnet50v2", 224, "keras-tf",
           "Keras ResNet-50 v2 (pre-activation residual blocks; tf-mode preprocess_input)"),
    # PyTorch: transformers models from small configs, and GhostNet
    _vision("arch-t-ghostnet", "ghostnet", 224, "imagenet",
            "GhostNet 1.0 in plain torch: ghost modules (cat + no-op channel slice), SE, depthwise, BatchNorm",
            onnx=(TS, DYNAMO)),
    _vision("arch-t-vit", "vit", 224, "half",
            "ViT (transformers ViTForImageClassification): patch 16, hidden 192, 6 layers, 3 heads",
            onnx=(TS, DYNAMO)),
    _vision("arch-t-swin", "swin", 224, "imagenet",
            "Swin (transformers): embed 48, depths 2-2-2-2, window 7 (shifted windows, roll, patch merging)"),
    _vision("arch-t-mobilevit", "mobilevit", 256, "bgr01",
            "MobileViT-XS-sized (transformers): MobileNetV2 blocks + unfold/fold transformer blocks, BatchNorm",
            onnx=(TS, DYNAMO)),
    _vision("arch-t-levit", "levit", 224, "imagenet",
            "LeViT-128S config (transformers): attention with BatchNorm1d, hard-swish, attention biases"),
    _vision("arch-t-convnext", "convnext", 224, "imagenet",
            "ConvNeXt (transformers): hidden 48-96-192-384, depths 2-2-4-2, LayerNorm channels-first"),
    _vision("arch-t-regnet", "regnet", 224, "imagenet",
            "RegNetY-400MF config (transformers): grouped 3x3 convs (group width 8), SE, BatchNorm"),
    _vision("arch-t-segformer", "segformer", 256, "imagenet",
            "SegFormer-B0 (transformers, 19 classes): overlapping patch embeddings, efficient attention, "
            "all-MLP decoder with BatchNorm; logits at 1/4 resolution"),
    Arch("arch-t-distilbert", TORCH, "arch_transformers:distilbert", "input_ids", (1, 32), "tokens", dtype="int64",
         onnx=(TS, DYNAMO),
         notes="DistilBERT sequence classifier (transformers): vocab 30522, dim 256, 4 layers; int64 token ids"),
    Arch("arch-t-mobilebert", TORCH, "arch_transformers:mobilebert", "input_ids", (1, 32), "tokens", dtype="int64",
         output_names=("last_hidden_state",),
         notes="MobileBERT encoder (transformers): bottlenecks, NoNorm, 4 layers; returns last_hidden_state"),
    Arch("arch-t-wav2vec2", TORCH, "arch_transformers:wav2vec2", "input_values", (1, 16000), "speech",
         output_names=("last_hidden_state",),
         notes="wav2vec 2.0 encoder (transformers): 7 strided 1-D convs, GroupNorm, grouped positional conv, "
               "4 transformer layers; 1 s of 16 kHz audio"),
    Arch("arch-t-whisper-encoder", TORCH, "arch_transformers:whisper_encoder", "input_features", (1, 80, 3000),
         "log-mel",
         output_names=("last_hidden_state",),
         notes="Whisper encoder (transformers WhisperEncoder): 2 conv1d + GELU, sinusoidal positions, 2 layers "
               "of d_model 256 over 1500 frames; a 30 s log-mel spectrogram"),
)

BY_NAME = {a.name: a for a in ARCHITECTURES}
