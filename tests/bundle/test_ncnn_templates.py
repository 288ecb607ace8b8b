"""The integration code of NCNN bundles: rendered from a real bundle's manifest, the C++ wrapper and its JNI glue
compiled with the system C++ compiler against ncnn's real headers, the Kotlin class compiled with kotlinc and its
native methods matched with the JNI registration table.

ncnn's headers come from the ncnn sdist on PyPI (no wheel ships them, Debian has no ncnn package): ./setup.sh
configures it with CMake, as ncnn-android-vulkan / ncnn-apple-vulkan are built (``vulkan``) and CPU-only (``cpu``),
into ``.venv/share/ncnn-include/<flavour>/ncnn/``; ``DEPLOYKIT_NCNN_INCLUDE`` points elsewhere. The code is
compiled, not linked (ncnn's library is not built here). The Objective-C++ bridge and the Swift file need Apple's
SDK: they are checked by structure only (what they declare and call).
"""

from __future__ import annotations

import copy
import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploykit.bundle.ncnn_code import blob_dims, cpp_string, image_plan
from deploykit.bundle.templates import integration_files, template_root
from deploykit.bundle.verify import verify_bundle
from tests.bundle.ncnn_helpers import STD, bundle_tiny, converted_tiny

GXX = shutil.which("g++")
NCNN_INCLUDE = Path(os.environ.get("DEPLOYKIT_NCNN_INCLUDE") or Path(sys.prefix) / "share" / "ncnn-include")


def _jni_include() -> list[str]:
    """-I flags for jni.h and jni_md.h: $JAVA_HOME's, else the JDK that provides javac, else any system JDK."""
    homes = [os.environ.get("JAVA_HOME")]
    if shutil.which("javac"):
        homes.append(str(Path(os.path.realpath(shutil.which("javac"))).parent.parent))
    homes += sorted(glob.glob("/usr/lib/jvm/*"))
    for home in filter(None, homes):
        include = Path(home) / "include"
        if (include / "jni.h").is_file():
            return [f"-I{include}", *(f"-I{p}" for p in include.iterdir() if (p / "jni_md.h").is_file())]
    return []


JNI = _jni_include()
needs_compiler = pytest.mark.skipif(
    GXX is None or not (NCNN_INCLUDE / "vulkan" / "ncnn" / "net.h").is_file() or not JNI,
    reason=f"needs g++, ncnn's headers in {NCNN_INCLUDE} (./setup.sh downloads the ncnn sdist and configures them "
           "with CMake) and a JDK's jni.h")


@pytest.fixture(scope="module")
def ncnn_bundles(tmp_path_factory, keys, labels_file) -> dict[str, Path]:
    return bundle_tiny(converted_tiny(tmp_path_factory), tmp_path_factory.mktemp("ncnn-t"), keys["publisher"][0],
                       labels_file)


@pytest.fixture(scope="module")
def manifests(ncnn_bundles, keys) -> dict[str, dict]:
    return {p: verify_bundle(path, [keys["publisher"][1]]).manifest.raw for p, path in ncnn_bundles.items()}


def _files(bundle: Path) -> dict[str, str]:
    with zipfile.ZipFile(bundle) as archive:
        return {n: archive.read(n).decode() for n in archive.namelist() if n.startswith("integration/")}


def _render(manifest: dict) -> dict[str, str]:
    """The integration files of ``manifest`` (a real one, maybe edited), rendered as ``deploykit bundle`` does."""
    listed = [{"path": f["path"], "role": f["role"]} for f in manifest["files"]]
    rendered = integration_files(manifest, "b.zip", None, None, template_root(), listed)
    return {path: data.decode() for path, data in rendered.items()}


# -- what the rendered code says -----------------------------------------------------------------------------------

def test_the_blob_table_is_the_pairs_input_layer_and_the_manifests_io(ncnn_bundles, manifests, tmp_path_factory):
    from deploykit.formats.ncnn import param

    dist = converted_tiny(tmp_path_factory)
    graph = param.read(dist / "tiny.fp32.ncnn" / "model.ncnn.param")
    android = _files(ncnn_bundles["android"])
    header = android["integration/cpp/DeployKitNcnn.h"]
    # the Input layer declares (c, h, w) = (3, 32, 32): the table lists w, h, d, c
    assert graph.input_shape("x") == (3, 32, 32)
    assert blob_dims(manifests["android"]["io"]["inputs"][0]) == (3, 32, 32, 1, 3)
    assert '    {"x", 3, 32, 32, 1, 3, true},  // float32 1x3x32x32, NCHW' in header
    assert '    {"output", 1, 10, 1, 1, 1, true},  // float32 1x10' in header
    assert "inline constexpr bool kHasImageInput = true;" in header
    cpp = android["integration/cpp/DeployKitNcnn.cpp"]
    for line in ("constexpr bool kFp16Storage = false;", "constexpr bool kFp16Arithmetic = false;",
                 "constexpr Resize kResize = Resize::Stretch;", "constexpr Filter kFilter = Filter::Bilinear;",
                 "constexpr int kWidth = 32;", "constexpr bool kNormalize = true;",
                 "constexpr float kMean[kChannels] = {123.675f, 116.28f, 103.53f};",
                 f"constexpr float kNorm[kChannels] = {{{1 / STD[0]!r}f, {1 / STD[1]!r}f, {1 / STD[2]!r}f}};",
                 "//   resize  stretch to 32x32, bilinear: ncnn::Mat::from_pixels_resize",
                 "//   values  (pixel - mean) / std, mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375]: "
                 "ncnn substract_mean_normalize(mean, 1 / std)"):
        assert line in cpp, line
    kotlin = android["integration/kotlin/DeployKitNcnn.kt"]
    for line in ('val INPUT_NAMES = arrayOf("x")', 'val OUTPUT_NAMES = arrayOf("output")',
                 "val INPUT_SIZES = intArrayOf(3072)",
                 'const val WEIGHTS_FILE = "model.ncnn.bin"', "const val TAKES_PICTURES = true",
                 'System.loadLibrary("deploykit_ncnn")'):
        assert line in kotlin, line
    assert 'set(NCNN_ANDROID_DIR "${CMAKE_SOURCE_DIR}/ncnn-' in android["integration/cpp/CMakeLists.txt"]
    readme = android["integration/README.md"]
    assert "Android API 24+, ncnn " in readme and "-android-vulkan release or newer" in readme
    for text in android.values():
        assert "{{" not in text


def test_the_updaters_install_both_files_and_only_ncnn_bundles(ncnn_bundles):
    model = _files(ncnn_bundles["android"])["integration/kotlin/DeployKitModel.kt"]
    assert 'const val MODEL_PATH = "model/model.ncnn.param"' in model
    assert 'const val VARIANT_PREFIX = "ncnn-"' in model and "val OTHER_VARIANT_PREFIXES = listOf<String>()" in model
    assert 'putStringSet("modelFiles", files.filter { it.role == "model" }' in model
    assert "if (files.any { !File(dir, it).isFile }) return null" in model
    swift = _files(ncnn_bundles["ios"])["integration/swift/DeployKitModel.swift"]
    for line in ('public static let format = "ncnn"', 'public static let variantPrefix = "ncnn-"',
                 'public static let weightsFile = "model.ncnn.bin"', "public final class DeployKitModelUpdater",
                 'manifest["format"] as? String == DeployKitModelInfo.format',
                 'defaults.stringArray(forKey: key("modelFiles"))', "DeployKitModelInfo.isThisRuntime("):
        assert line in swift, line
    assert "import ExecuTorch" not in swift and "import CoreML" not in swift and "{{" not in swift


def test_litert_and_core_ml_updaters_skip_the_prefixed_runtimes(manifests):
    from deploykit.bundle.templates import _variant_context

    litert = _variant_context("android", "fp16")
    assert (litert["kotlin_variant_prefix"], litert["kotlin_other_variant_prefixes"]) == (
        '""', 'listOf("executorch-", "ncnn-")')
    coreml = _variant_context("ios", "int8-weights")  # a dash in the quantization's own name
    assert (coreml["swift_variant_prefix"], coreml["swift_other_variant_prefixes"]) == (
        '""', '["executorch-", "ncnn-"]')
    assert _variant_context("ios", "executorch-fp32")["swift_other_variant_prefixes"] == "[]"


def test_the_objective_c_bridge_and_swift_agree_on_their_calls(ncnn_bundles):
    """Structure only: compiling Objective-C++ and Swift needs Apple's SDK."""
    ios = _files(ncnn_bundles["ios"])
    header, bridge = ios["integration/objc/DeployKitNcnnBridge.h"], ios["integration/objc/DeployKitNcnnBridge.mm"]
    swift = ios["integration/swift/DeployKitModel.swift"]
    assert "#include" not in header  # plain Objective-C: Swift imports it through the bridging header
    for selector in ("initWithParamPath:(NSString *)paramPath binPath:(NSString *)binPath error:(NSError **)error",
                     "runInputs:(NSArray<NSData *> *)inputs error:(NSError **)error",
                     "runImage:(CGImageRef)image error:(NSError **)error"):
        assert selector in header and selector in bridge, selector
    for call in ("_model->load(", "_model->run(values, outputs)", "_model->runPixels(", "deploykit::describe("):
        assert call in bridge, call
    # the Swift names of those selectors
    for call in ("DeployKitNcnnModel(paramPath: model.path, binPath: weights.path)", "model.runInputs(data)",
                 "model.runImage(image)"):
        assert call in swift, call
    assert '#include "DeployKitNcnn.h"' in bridge
    assert "kCGImageAlphaPremultipliedLast | kCGBitmapByteOrder32Big" in bridge


# -- the image path's plan ---------------------------------------------------------------------------------------

# A manifest's preprocessing block (schema: manifest.schema.json), torchvision's ImageNet normalization.
BLOCK = {"size": [224, 224], "resize": "stretch", "crop": "none", "crop_fraction": 1.0, "interpolation": "bilinear",
         "fill": 0, "color": "RGB", "pixel_range": "0-1", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
         "normalized_by": "app", "feed": "float32-normalized"}


def _image_input(**block) -> dict:
    """An NCHW image input with the preprocessing block ``BLOCK`` updated by ``block``."""
    return {"name": "images", "dtype": "float32", "shape": [1, 3, 224, 224], "layout": "NCHW", "normalization": None,
            "preprocessing": dict(BLOCK, **block)}


def _hows(plan) -> dict[str, str]:
    return {what: how for what, _, how in plan["steps"]}


def test_the_image_plan_uses_ncnn_where_it_computes_what_the_reference_does():
    plan = image_plan(_image_input(resize="shorter-side", crop_fraction=0.875))
    assert _hows(plan) == {"colour": "ncnn pixel type PIXEL_RGBA2RGB", "resize": "ncnn::Mat::from_pixels_resize",
                           "crop": "ncnn::copy_cut_border", "values": "ncnn substract_mean_normalize(mean, 1 / std)",
                           "layout": "as from_pixels writes it (channels first)"}
    assert plan["mean"] == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255])  # 0-1 range: pixel units
    assert plan["std"] == pytest.approx([0.229 * 255, 0.224 * 255, 0.225 * 255])
    letterbox = image_plan(_image_input(resize="letterbox", fill=114, color="BGR"))
    assert _hows(letterbox)["pad"] == "ncnn::copy_make_border, BORDER_CONSTANT" and letterbox["fill"] == 114
    assert _hows(letterbox)["colour"] == "ncnn pixel type PIXEL_RGBA2BGR"
    model_normalizes = image_plan(_image_input(normalized_by="model", feed="uint8-pixels"))
    assert not model_normalizes["normalize"] and _hows(model_normalizes)["values"] == "as they are"


def test_the_image_plan_is_explicit_where_ncnn_computes_otherwise():
    gray = image_plan(dict(_image_input(color="GRAY", mean=[0.5], std=[0.5]), shape=[1, 1, 224, 224]))
    assert _hows(gray)["colour"].startswith("explicit: Pillow's L") and gray["mean"] == [127.5]
    for interpolation in ("nearest", "bicubic"):
        plan = image_plan(_image_input(interpolation=interpolation))
        assert _hows(plan)["resize"].startswith(f"explicit {interpolation}")
    nhwc = image_plan(dict(_image_input(), shape=[1, 224, 224, 3], layout="NHWC"))
    assert _hows(nhwc)["layout"].startswith("explicit")
    bare = dict(_image_input(), preprocessing=None)
    assert image_plan(bare)["kind"] is None  # no block, no normalization: nothing says what a pixel becomes
    four = dict(bare, shape=[1, 4, 224, 224], normalization={"mean": [0.0], "std": [1.0]})
    assert "4 channels" in image_plan(four)["why"]


def test_cpp_string_literals_cannot_leave_the_string():
    assert cpp_string('a"b\\c??=d') == '"a\\"b\\\\c\\?\\?=d"'
    assert cpp_string("é\n") == '"\\303\\251\\012"'


# -- compiled ----------------------------------------------------------------------------------------------------

def _variants(manifest: dict) -> dict[str, dict]:
    """The real manifest and edits of it that take every branch the renderer has: each preprocessing mode, the
    explicit colour, filters and layout, fp16, and a model that takes no picture."""
    def edited(**tensor) -> dict:
        m = copy.deepcopy(manifest)
        m["io"]["inputs"][0].update(tensor)
        return m

    block = dict(BLOCK, size=[32, 32])
    fp16 = copy.deepcopy(manifest)
    fp16["compatibility"]["runtime"]["fp16_storage"] = True
    return {
        "real": manifest,
        "shorter-side-bicubic-bgr": edited(preprocessing=dict(block, resize="shorter-side", crop_fraction=0.875,
                                                               interpolation="bicubic", color="BGR")),
        "letterbox-nearest": edited(preprocessing=dict(block, resize="letterbox", fill=114, interpolation="nearest")),
        "gray": edited(shape=[1, 1, 32, 32], normalization={"mean": [127.5], "std": [127.5]}),
        "nhwc-model-normalizes": edited(shape=[1, 32, 32, 3], layout="NHWC",
                                        preprocessing=dict(block, normalized_by="model", feed="uint8-pixels")),
        "no-picture": edited(normalization=None),
        "fp16": fp16,
    }


def _compile(source: Path, include: str) -> None:
    """g++ -fsyntax-only with warnings on: fails on an error anywhere and on a warning in the generated files."""
    done = subprocess.run([GXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", f"-I{include}", *JNI, str(source)],
                          cwd=source.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    ours = re.findall(r"(?:DeployKitNcnn\.(?:h|cpp)|deploykit_ncnn_jni\.cpp):\d+:\d+: warning.*", done.stderr)
    assert not ours, ours


@needs_compiler
def test_cpp_and_jni_compile_against_ncnn_headers(manifests, tmp_path):
    """Every variant's DeployKitNcnn.cpp against the Vulkan build's headers as the Apple xcframework includes them
    (<ncnn/net.h>); the real bundle's .cpp and JNI glue also against the CPU-only headers and as ncnn's CMake
    package includes them (<net.h>, include/ncnn on the path)."""
    vulkan, cpu = NCNN_INCLUDE / "vulkan", NCNN_INCLUDE / "cpu"
    for name, manifest in _variants(manifests["android"]).items():
        folder = tmp_path / name
        for path, text in _render(manifest).items():
            if path.startswith("integration/cpp/"):
                folder.mkdir(exist_ok=True)
                (folder / Path(path).name).write_text(text)
        _compile(folder / "DeployKitNcnn.cpp", str(vulkan))
        if name == "real":
            _compile(folder / "deploykit_ncnn_jni.cpp", str(vulkan))
            for include in (cpu, vulkan / "ncnn"):
                _compile(folder / "DeployKitNcnn.cpp", str(include))
                _compile(folder / "deploykit_ncnn_jni.cpp", str(include))
    header = (tmp_path / "no-picture" / "DeployKitNcnn.h").read_text()
    assert "inline constexpr bool kHasImageInput = false;" in header
    assert "constexpr bool kFp16Storage = true;" in (tmp_path / "fp16" / "DeployKitNcnn.cpp").read_text()
    gray = (tmp_path / "gray" / "DeployKitNcnn.cpp").read_text()
    assert "constexpr Color kColor = Color::Gray;" in gray and "constexpr float kMean[kChannels] = {127.5f};" in gray


STUBS = r"""
package android.graphics

// The one android.graphics.Bitmap API DeployKitNcnn.kt calls, for compiling on the JVM.
class Bitmap(val width: Int, val height: Int) {
    fun getPixels(pixels: IntArray, offset: Int, stride: Int, x: Int, y: Int, width: Int, height: Int) {
        for (i in 0 until width * height) pixels[offset + i] = stride + x + y
    }
}
"""


@pytest.mark.skipif(shutil.which("kotlinc") is None or shutil.which("javap") is None,
                    reason="kotlinc or javap is not on PATH; ./setup.sh installs Debian's kotlin package")
def test_kotlin_class_compiles_and_declares_the_natives_the_jni_registers(ncnn_bundles, tmp_path):
    android = _files(ncnn_bundles["android"])
    for name in ("DeployKitNcnn.kt", "BundleVerifier.kt"):  # BundleVerifier.kt holds DeployKitException
        (tmp_path / name).write_text(android[f"integration/kotlin/{name}"])
    (tmp_path / "Bitmap.kt").write_text(STUBS)
    built = subprocess.run(["kotlinc", "DeployKitNcnn.kt", "BundleVerifier.kt", "Bitmap.kt", "-d", "out"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    shown = subprocess.run(["javap", "-s", "-p", "-cp", "out", "com.deploykit.generated.DeployKitNcnn"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    natives = dict(re.findall(r" native \S+ (\w+)\(.*\);\n\s+descriptor: (\S+)", shown.stdout))
    jni = android["integration/cpp/deploykit_ncnn_jni.cpp"]
    registered = dict(re.findall(r'\{const_cast<char\*>\("(\w+)"\), const_cast<char\*>\("([^"]+)"\)', jni))
    assert natives == registered and len(natives) == 5
    assert '"com/deploykit/generated/DeployKitNcnn"' in jni
