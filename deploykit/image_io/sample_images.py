"""Natural-looking test images for parity checks on image inputs (nothing downloaded, same bytes everywhere).

``natural(height, width, rng)`` draws a scene a camera could plausibly see: smooth colour gradients,
a horizon, soft blobs in skin and other colours, fine texture and sensor noise, drawn supersampled and
downsampled. Random noise is a poor parity input for an image model: it drives activations a real
photo never reaches (the corpus measured this; bench/results/corpus-inputs.md), while these images
exercise the same ranges and spatial statistics as photos. ``sample_images`` gives seeded uint8 pixels.
"""

from __future__ import annotations

import numpy as np


def sample_images(count: int, height: int, width: int, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    """``count`` uint8 images (height x width x channels, RGB or luminance), the same for the same seed."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        rgb = natural(height, width, rng)
        if channels == 1:
            rgb = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma, as Pillow's "L"
            rgb = rgb[..., None]
        images.append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return images


UPPER = ((120, 160, 215), (190, 200, 210), (215, 200, 175), (90, 110, 140), (170, 150, 130), (60, 60, 70))  # sky, walls
LOWER = ((70, 110, 50), (120, 95, 70), (150, 150, 145), (200, 180, 140), (60, 50, 45), (95, 120, 140))  # grass, floor
SKIN = ((224, 172, 138), (198, 134, 66), (141, 85, 36), (255, 219, 172), (232, 190, 160), (110, 70, 50))


def blob_layer(image, box, color, rng, blur: float) -> None:
    """Paste a soft-edged ellipse of ``color`` (with a little shading) onto ``image`` in place."""
    from PIL import Image, ImageDraw, ImageFilter

    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    if blur:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    w, h = image.size
    shade = smooth_field(h, w, rng, 3, 0.75, 1.1)
    fill = np.clip(np.asarray(color, np.float32)[None, None, :] * shade, 0, 255).astype(np.uint8)
    image.paste(Image.fromarray(fill), (0, 0), mask)


def natural(height: int, width: int, rng) -> np.ndarray:
    """A natural-looking scene (RGB float HxWx3 in 0..255 before quantization): smooth colour gradients,
    a horizon, soft blobs and ellipses in skin and other colours, fine texture, sensor noise."""
    from PIL import Image, ImageFilter

    ss = 2
    H, W = max(height * ss, 8), max(width * ss, 8)
    top = np.asarray(UPPER[int(rng.integers(len(UPPER)))], np.float32) * rng.uniform(0.7, 1.1)
    bottom = np.asarray(LOWER[int(rng.integers(len(LOWER)))], np.float32) * rng.uniform(0.6, 1.1)
    light = smooth_field(H, W, rng, 3, 0.65, 1.15, channels=1)  # illumination
    tint = smooth_field(H, W, rng, 3, -25, 25)  # colour variation
    horizon = int(H * rng.uniform(0.3, 0.8))
    base = np.where(np.arange(H)[:, None, None] < horizon, top, bottom) * light + tint
    texture = smooth_field(H, W, rng, 24, -18, 18, channels=1)
    image = Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(ss))
    for _ in range(int(rng.integers(2, 7))):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        rx, ry = rng.uniform(0.05, 0.3) * W, rng.uniform(0.05, 0.35) * H
        if rng.random() < 0.5:
            color = SKIN[int(rng.integers(len(SKIN)))]
        else:
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
        blob_layer(image, [cx - rx, cy - ry, cx + rx, cy + ry], color, rng, blur=float(rng.uniform(0.5, 4)) * ss)
    return finish_drawing(image, (width, height), rng, noise=rng.uniform(1.0, 4.0)).astype(np.float32)


def finish_drawing(image, size, rng, noise: float) -> np.ndarray:
    """Downsample the supersampled drawing to ``size`` (w, h), add sensor noise, quantize to uint8."""
    from PIL import Image

    small = image.resize(size, Image.Resampling.BILINEAR)  # antialiased when reducing
    array = np.asarray(small, dtype=np.float32)
    array = array + rng.normal(0.0, noise, array.shape)
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def smooth_field(height: int, width: int, rng, grid: int, low: float, high: float, channels: int = 3) -> np.ndarray:
    """A smooth random field: a coarse random grid upsampled bicubically (float32 HxWxC)."""
    from PIL import Image

    coarse = rng.uniform(0, 1, (grid, grid, channels)).astype(np.float32)
    planes = [Image.fromarray(np.ascontiguousarray(coarse[..., c])).resize((width, height), Image.Resampling.BICUBIC)
              for c in range(channels)]
    planes = [np.asarray(plane) for plane in planes]
    return low + (high - low) * np.clip(np.stack(planes, axis=-1), 0, 1)


