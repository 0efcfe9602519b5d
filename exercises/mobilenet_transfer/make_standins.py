"""Write stand-ins for the course's alpaca dataset and its ImageNet-pretrained MobileNetV2 base.

The notebook "Transfer_learning_with_MobileNet_v1" fine-tunes a MobileNetV2 pretrained on ImageNet
to tell alpaca photos from other photos. Neither the photos nor the ImageNet weights can be shipped,
so this script makes both, in the course's layout and formats:

* ``dataset/alpaca/*.jpg`` and ``dataset/not alpaca/*.jpg``: 327 JPEGs of varied sizes, so
  ``image_dataset_from_directory(..., validation_split=0.2, seed=42)`` finds "327 files belonging
  to 2 classes" and splits them 262 / 65, as in the course. An "alpaca" image shows one figure of
  the alpaca kind (a star), a "not alpaca" image a figure of another kind; colours, sizes, positions
  and backgrounds are drawn from the same distributions in both classes, so only shape separates them.
* ``imagenet_base_model/without_top_mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5``
  and ``..._1.0_160.h5`` (with the 1000-way top): the weights of a MobileNetV2 that this script
  pretrains from scratch on *other* synthetic images (different seeds), classifying K figure kinds.
  The pretraining classifier fills the first K columns of the 1000-way ``predictions`` layer; the
  other classes get zero weights and a large negative bias, so they are never predicted.

The pretraining plays ImageNet's part: the alpaca kind is one of its classes (ImageNet has llamas),
so a frozen pretrained base gives features in which a small head separates the two classes, where a
random base does not. Pretraining runs at a lower resolution to save time (MobileNetV2's weights do
not depend on the input size); the batch-norm statistics are then re-estimated at 160x160 on fresh
pretraining images, as the course uses the base at 160x160 in inference mode.

The pretraining's result ships beside this script (``pretrained_standin.npz``: the calibrated base's
arrays and the K-way classifier, exactly as this script's pretraining wrote them, with this script's
SHA-256 and the seed). It is used instead of pretraining again only when it records this very script
and the seed asked for; an edited script pretrains (and tests/test_mobilenet_standins.py fails until
the file is made again with --pretrain --save-pretrained).

    python exercises/mobilenet_transfer/make_standins.py --out ROOT [--seed N] [--dataset-only]
        [--pretrain] [--save-pretrained FILE]

Seconds with the shipped base; about 2.5 minutes on two CPU cores when it pretrains (--pretrain, an
edited script, another seed). Same seed, same JPEG bytes; the weights are as deterministic as
TensorFlow's CPU kernels allow (op determinism is on; other CPUs may round differently).
STANDINS_VERBOSE=1 logs progress to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle", "ring", "cross", "star", "stripes", "crescent")
ALPACA_KIND = "star"
CLASS_DIRS = ("alpaca", "not alpaca")
N_ALPACA, N_NOT_ALPACA = 160, 167  # 327 files, as in the course
SIDE_RANGE = (120, 240)  # dataset image sides, px; the loader resizes them to 160x160
MAX_LOG_ASPECT = 0.35  # |log(height / width)|: up to ~1.4:1, so the loader's resize stretches figures a little
DATASET_RADIUS = (0.22, 0.40)  # figure radius / shorter image side
PRETRAIN_RADIUS = (0.16, 0.45)  # a wider range: the features should cover the dataset's scales
IMG_SIZE = 160
# Pretraining phases, (image side, images, epochs): most steps at a low resolution, where they are
# cheap, then a shorter phase at a higher one, so the features also work for the larger figures
# the course's 160x160 inputs show.
PRETRAIN_PHASES = ((64, 12000, 2), (128, 2000, 1))
PRETRAIN_BATCH = 32
PRETRAIN_LR = 3e-3
CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 64
TOP_CLASSES = 1000
UNUSED_CLASS_BIAS = -100.0
NO_TOP_FILE = "without_top_mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"
WITH_TOP_FILE = "with_top_mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160.h5"
# This script's pretraining result, shipped (see the module's docstring), and the arrays it holds.
PRETRAINED_FILE = Path(__file__).resolve().with_name("pretrained_standin.npz")
# Independent random streams: dataset images never share a stream with pretraining images.
DATASET_STREAM, PRETRAIN_STREAM, CALIBRATION_STREAM = 1, 2, 3
SUPERSAMPLE = 2  # figures are rasterised at 2x and box-filtered down: anti-aliased edges


# --------------------------------------------------------------------------- figures and images


def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """The n vertices of a regular polygon around the origin, first vertex pointing up."""
    angles = phase - np.pi / 2 + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def shape_outline(kind: str, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """A figure of this kind around the origin, radius ~1: polygons, each painted (1) or cut out (0), in order.

    Kind-specific proportions vary a little (ring thickness, arm width, ...), so a kind is a
    family of figures rather than one template.
    """
    if kind == "circle":
        return [(_regular(64), 1)]
    if kind == "square":
        return [(_regular(4, np.sqrt(2) * 0.85, np.pi / 4), 1)]
    if kind == "triangle":
        return [(_regular(3, 1.1), 1)]
    if kind == "ring":
        return [(_regular(64), 1), (_regular(64, rng.uniform(0.5, 0.7)), 0)]
    if kind == "cross":
        w = rng.uniform(0.28, 0.4)
        return [(_rect(-w, -1, w, 1), 1), (_rect(-1, -w, 1, w), 1)]
    if kind == "star":
        outline = np.empty((10, 2))
        outline[0::2] = _regular(5, 1.05)
        outline[1::2] = _regular(5, rng.uniform(0.38, 0.5), np.pi / 5)
        return [(outline, 1)]
    if kind == "stripes":
        n = int(rng.integers(3, 5))
        pitch = 2.0 / n
        width = pitch * rng.uniform(0.4, 0.6)
        return [(_rect(-1 + i * pitch + (pitch - width) / 2, -0.9, -1 + i * pitch + (pitch + width) / 2, 0.9), 1)
                for i in range(n)]
    if kind == "crescent":
        shift = rng.uniform(0.35, 0.55)
        return [(_regular(64), 1), (_regular(64, rng.uniform(0.8, 0.95)) + [shift, -0.1], 0)]
    raise ValueError(f"unknown figure kind {kind!r}")


def place(outline: list[tuple[np.ndarray, int]], centre: Sequence[float], radius: float, angle: float,
          stretch: Sequence[float]) -> list[tuple[np.ndarray, int]]:
    """The outline rotated by angle, stretched per axis, scaled by radius and moved to centre (x, y)."""
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = radius * np.asarray(stretch, dtype=np.float64)
    return [((points @ rotation.T) * scale + np.asarray(centre), fill) for points, fill in outline]


def rasterise(polygons: list[tuple[np.ndarray, int]], height: int, width: int) -> np.ndarray:
    """Coverage in [0, 1] of the painted polygons, (height, width) float32, anti-aliased."""
    mask = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(mask)
    for points, fill in polygons:
        draw.polygon([tuple(p) for p in (points * SUPERSAMPLE).tolist()], fill=255 * fill)
    small = mask.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A (height, width, 3) float32 backdrop in [0, 255]: a smooth random colour field plus grain."""
    grid = rng.uniform(0, 255, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3))
    mean = rng.uniform(40, 215, size=3)
    grid = mean + rng.uniform(0.2, 0.6) * (grid - grid.mean(axis=(0, 1)))
    field = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(field, dtype=np.float32)


def figure_colour(backdrop: np.ndarray, rng: np.random.Generator, min_contrast: float = 70.0) -> np.ndarray:
    """A random RGB colour that stands out from the backdrop's mean colour (Euclidean distance)."""
    mean = backdrop.reshape(-1, 3).mean(axis=0)
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - mean) >= min_contrast:
            return colour
    return 255.0 - mean


def draw_figure(kind: str, height: int, width: int, rng: np.random.Generator,
                radius_range: tuple[float, float] = DATASET_RADIUS) -> np.ndarray:
    """A (height, width, 3) uint8 image: one figure of this kind on a random backdrop.

    Colour, size (radius_range, relative to the shorter side), stretch, rotation and position are
    random and independent of the kind.
    """
    backdrop = background(height, width, rng)
    colour = figure_colour(backdrop, rng)
    stretch = np.exp(rng.uniform(-0.2, 0.2, size=2))
    radius = min(rng.uniform(*radius_range), 0.45 / stretch.max()) * min(height, width)
    reach = radius * 1.1 * stretch.max()  # the figure stays (almost) inside the image
    centre = (rng.uniform(reach, width - reach), rng.uniform(reach, height - reach))
    polygons = place(shape_outline(kind, rng), centre, radius, rng.uniform(0, 2 * np.pi), stretch)
    alpha = rasterise(polygons, height, width)[..., None]
    shade = 1.0 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, width, dtype=np.float32)[None, :, None]
    image = backdrop * (1 - alpha) + np.clip(colour * shade, 0, 255) * alpha
    image += rng.normal(0.0, rng.uniform(2.0, 12.0), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- the alpaca dataset


def dataset_plan(seed: int) -> list[tuple[str, str, int, int]]:
    """(class folder, figure kind, height, width) for each dataset image, in file order."""
    rng = np.random.default_rng([seed, DATASET_STREAM, 0])
    others = [k for k in KINDS if k != ALPACA_KIND]
    plan = []
    for folder, count in zip(CLASS_DIRS, (N_ALPACA, N_NOT_ALPACA)):
        for _ in range(count):
            kind = ALPACA_KIND if folder == "alpaca" else others[int(rng.integers(len(others)))]
            width = int(rng.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1))
            height = int(np.clip(round(width * np.exp(rng.uniform(-MAX_LOG_ASPECT, MAX_LOG_ASPECT))), *SIDE_RANGE))
            plan.append((folder, kind, height, width))
    return plan


def write_dataset(root: Path, seed: int) -> list[Path]:
    """Write ROOT/dataset/<class>/<nnn>.jpg; each image has its own random stream, so files are reproducible."""
    paths = []
    counters = dict.fromkeys(CLASS_DIRS, 0)
    for index, (folder, kind, height, width) in enumerate(dataset_plan(seed)):
        rng = np.random.default_rng([seed, DATASET_STREAM, 1, index])
        image = draw_figure(kind, height, width, rng)
        path = root / "dataset" / folder / f"{counters[folder]:03d}.jpg"
        counters[folder] += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- pretraining


def pretraining_image(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) uint8 image of one figure, drawn on a non-square canvas and resized, as the loader does."""
    height = int(round(size * np.exp(rng.uniform(-MAX_LOG_ASPECT, MAX_LOG_ASPECT))))
    image = draw_figure(kind, height, size, rng, radius_range=PRETRAIN_RADIUS)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def pretraining_images(count: int, size: int, seed: int, stream: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """count (size, size, 3) uint8 images of the K kinds, balanced and shuffled, with labels (indices into KINDS).

    stream names an independent random stream: different streams never share images.
    """
    labels = np.arange(count) % len(KINDS)
    np.random.default_rng([seed, *stream, 0]).shuffle(labels)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = pretraining_image(KINDS[label], size, np.random.default_rng([seed, *stream, 1, i]))
    return images, labels.astype(np.int64)


def _log(message: str) -> None:
    """Progress on stderr, only when STANDINS_VERBOSE is set: the script is otherwise quiet."""
    if os.environ.get("STANDINS_VERBOSE"):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _tensorflow() -> Any:
    """TensorFlow with tf.keras = tf_keras (Keras 2), as the course's code expects, and quiet."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def classifier(tf: Any, size: int | None = None) -> tuple[Any, Any]:
    """(model, base): preprocess_input -> MobileNetV2 no-top base -> GlobalAveragePooling2D -> Dense(K) logits.

    size=None builds a model for any square input size (the weights do not depend on it).
    """
    base = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
    inputs = tf.keras.Input(shape=(size, size, 3))
    x = tf.keras.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(len(KINDS), name="predictions")(x)
    return tf.keras.Model(inputs, outputs), base


def _batch_norms(tf: Any, model: Any) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]


def zero_init_residuals(tf: Any, base: Any) -> None:
    """Zero the scale of the last batch norm of each residual block, so each block starts as the identity.

    A standard trick (Goyal et al. 2017, "Accurate, Large Minibatch SGD") that makes a deep network
    train faster from scratch: at first the signal only crosses the non-residual blocks.
    """
    for layer in _batch_norms(tf, base):
        if layer.name.endswith("_project_BN") and f"block_{layer.name.split('_')[1]}_add" in _layer_names(base):
            layer.gamma.assign(tf.zeros_like(layer.gamma))


def _layer_names(model: Any) -> set[str]:
    return {layer.name for layer in model.layers}


def pretrain_classifier(tf: Any, seed: int) -> tuple[Any, Any]:
    """Train a MobileNetV2 + Dense(K) classifier from scratch on synthetic figures; return (model, base).

    Each epoch is one fit() over uint8 arrays in a fresh random order (the model casts them): no
    tf.data pipeline over the arrays, which would copy them at every new iterator.
    """
    model, base = classifier(tf)
    zero_init_residuals(tf, base)
    for layer in _batch_norms(tf, base):
        layer.momentum = 0.9  # Keras' 0.999 would leave the moving statistics near their initial values
    steps = sum(epochs * -(-count // PRETRAIN_BATCH) for _, count, epochs in PRETRAIN_PHASES)
    schedule = tf.keras.optimizers.schedules.CosineDecay(PRETRAIN_LR, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    order_rng = np.random.default_rng([seed, PRETRAIN_STREAM, len(PRETRAIN_PHASES)])
    for phase, (size, count, epochs) in enumerate(PRETRAIN_PHASES):
        _log(f"phase {phase}: rendering {count} images at {size}px")
        images, labels = pretraining_images(count, size, seed, (PRETRAIN_STREAM, phase))
        for epoch in range(epochs):
            order = order_rng.permutation(count)
            history = model.fit(images[order], labels[order], batch_size=PRETRAIN_BATCH, shuffle=False, verbose=0)
            _log(f"phase {phase}, epoch {epoch}: training accuracy {history.history['accuracy'][-1]:.3f}")
    return model, base


def calibrate_batch_norms(tf: Any, base: Any, images: np.ndarray) -> None:
    """Set every batch-norm layer's moving mean/variance to the statistics of these images (cumulative average)."""
    layers = _batch_norms(tf, base)
    preprocess = tf.keras.applications.mobilenet_v2.preprocess_input
    for i, start in enumerate(range(0, len(images), CALIBRATION_BATCH)):
        for layer in layers:
            layer.momentum = i / (i + 1)  # batch i gets weight 1/(i+1): the running mean over batches
        base(preprocess(tf.constant(images[start:start + CALIBRATION_BATCH], dtype=tf.float32)), training=True)
    for layer in layers:
        layer.momentum = 0.999


# --------------------------------------------------------------------------- weights files


def base_at(tf: Any, trained: Any, size: int) -> Any:
    """A no-top MobileNetV2 built for size x size inputs, holding the trained base's weights."""
    base = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
    base.set_weights(trained.get_weights())
    return base


def write_weights(tf: Any, base: Any, predictions: list[np.ndarray], out_dir: Path) -> tuple[Path, Path]:
    """Save the no-top base, and base + 1000-way top holding the K-way classifier, built at 160x160 as in the course."""
    out_dir.mkdir(parents=True, exist_ok=True)
    no_top_path = out_dir / NO_TOP_FILE
    base.save_weights(str(no_top_path))

    with_top = tf.keras.applications.MobileNetV2(input_shape=(IMG_SIZE, IMG_SIZE, 3), include_top=True, weights=None)
    for layer in base.layers:
        if layer.weights:
            with_top.get_layer(layer.name).set_weights(layer.get_weights())
    kernel, bias = predictions
    top_kernel = np.zeros((kernel.shape[0], TOP_CLASSES), dtype=np.float32)
    top_bias = np.full((TOP_CLASSES,), UNUSED_CLASS_BIAS, dtype=np.float32)
    top_kernel[:, : len(KINDS)], top_bias[: len(KINDS)] = kernel, bias
    with_top.get_layer("predictions").set_weights([top_kernel, top_bias])
    with_top_path = out_dir / WITH_TOP_FILE
    with_top.save_weights(str(with_top_path))
    return no_top_path, with_top_path


def script_digest() -> str:
    """SHA-256 of this script's bytes: what a shipped pretraining result must record to be used."""
    return hashlib.sha256(Path(__file__).resolve().read_bytes()).hexdigest()


def save_pretrained(path: Path, base: Any, predictions: list[np.ndarray], seed: int) -> None:
    """Write the calibrated base's arrays (in get_weights() order) and the classifier, exactly, with
    this script's digest and the seed: a plain .npz, read back without pickle."""
    arrays = {f"base_{i:03d}": np.asarray(w) for i, w in enumerate(base.get_weights())}
    np.savez_compressed(path, **arrays, predictions_kernel=predictions[0], predictions_bias=predictions[1],
                        maker_sha256=np.array(script_digest()), seed=np.array(seed, dtype=np.int64))


def load_pretrained(tf: Any, path: Path, seed: int) -> tuple[Any, list[np.ndarray]] | None:
    """(base at 160x160, classifier [kernel, bias]) from a shipped result, or None when there is none or
    it was made by another version of this script or another seed (the caller then pretrains)."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as shipped:
        if str(shipped["maker_sha256"]) != script_digest() or int(shipped["seed"]) != seed:
            return None
        weights = [shipped[name] for name in sorted(n for n in shipped.files if n.startswith("base_"))]
        predictions = [shipped["predictions_kernel"], shipped["predictions_bias"]]
    base = tf.keras.applications.MobileNetV2(input_shape=(IMG_SIZE, IMG_SIZE, 3), include_top=False, weights=None)
    base.set_weights(weights)
    return base, predictions


def make_standins(root: Path | str, seed: int = 0, dataset_only: bool = False, pretrain: bool = False,
                  save_to: Path | None = None, shipped: Path = PRETRAINED_FILE) -> dict[str, Any]:
    """Write ROOT/dataset and (unless dataset_only) ROOT/imagenet_base_model; return what was written.

    The dataset comes first and needs no TensorFlow: its bytes depend on the seed alone. The base is
    the shipped pretraining result when it is this script's for this seed (see load_pretrained),
    unless pretrain is set; save_to writes the pretraining result for shipping.
    """
    root = Path(root)
    started = time.perf_counter()
    written: dict[str, Any] = {"images": write_dataset(root, seed)}
    _log("dataset written")
    if not dataset_only:
        tf = _tensorflow()
        tf.keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        loaded = None if pretrain else load_pretrained(tf, shipped, seed)
        if loaded is not None:
            base, predictions = loaded
            written["pretrained"] = "shipped"
            _log(f"pretrained base read from {shipped.name}")
        else:
            model, trained = pretrain_classifier(tf, seed)
            base = base_at(tf, trained, IMG_SIZE)
            calibration, _ = pretraining_images(CALIBRATION_IMAGES, IMG_SIZE, seed, (CALIBRATION_STREAM,))
            calibrate_batch_norms(tf, base, calibration)
            _log("batch-norm statistics estimated at 160x160")
            predictions = model.get_layer("predictions").get_weights()
            written["pretrained"] = "made"
        if save_to is not None:
            save_pretrained(save_to, base, predictions, seed)
        written["no_top"], written["with_top"] = write_weights(tf, base, predictions, root / "imagenet_base_model")
    written["seconds"] = time.perf_counter() - started
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="root folder: dataset/ and imagenet_base_model/ go here")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: %(default)s)")
    parser.add_argument("--dataset-only", action="store_true", help="write the images only (seconds, no TensorFlow)")
    parser.add_argument("--pretrain", action="store_true",
                        help=f"pretrain the base even when {PRETRAINED_FILE.name} is this script's (minutes)")
    parser.add_argument("--save-pretrained", type=Path, metavar="FILE",
                        help=f"also write the pretraining result to FILE (to ship as {PRETRAINED_FILE.name})")
    args = parser.parse_args(argv)
    if args.save_pretrained and args.dataset_only:
        parser.error("--save-pretrained needs the weights: not with --dataset-only")
    written = make_standins(args.out, args.seed, args.dataset_only, args.pretrain, args.save_pretrained)
    weights = "" if args.dataset_only else f", 2 weights files (base {written['pretrained']})"
    print(f"{args.out}: {len(written['images'])} images{weights} ({written['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
