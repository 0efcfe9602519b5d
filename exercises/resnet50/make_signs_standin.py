"""Write a stand-in for the course's SIGNS dataset (docs/course_facts.md §4.3), which is not public.

The files have the SIGNS format, so the course's ``resnets_utils.load_dataset()`` reads them
unchanged: ``train_signs.h5`` (``train_set_x`` uint8 (1080, 64, 64, 3), ``train_set_y`` int64
(1080,), ``list_classes`` int64 [0..5]) and ``test_signs.h5`` (``test_set_x`` uint8 (120, 64, 64, 3),
``test_set_y`` int64 (120,), ``list_classes``), with 180 train and 20 test images per class.

The images are scikit-learn's bundled handwritten digits 0-5 (8x8, no download) drawn as a light
"hand" on a darker background at 64x64x3, each with a small deterministic augmentation (rotation,
scale, shift, colours, noise). Test images come from source digits that no training image uses.
Class k is the digit k, as SIGNS class k is k raised fingers. Everything derives from one seed, so
the same seed gives the same arrays on every machine.

    python exercises/resnet50/make_signs_standin.py [--out ROOT] [--seed N]

writes ROOT/datasets/*.h5, the folder the notebook reads (default ROOT: this script's folder; the
grader calls it with its data cache, see grader/spec.py DataSpec).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits

N_CLASSES = 6
TRAIN_PER_CLASS = 180
TEST_PER_CLASS = 20
SIZE = 64
SEED = 2021
DEFAULT_ROOT = Path(__file__).resolve().parent
FOLDER = "datasets"   # the folder the notebook's load_dataset() reads


def _render(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 8x8 digit (values 0..16) -> a (64, 64, 3) uint8 image with a random small augmentation."""
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))
    zoom = rng.uniform(6.2, 7.4)  # output pixels per source pixel: the digit spans ~50-60 of 64
    shift = rng.uniform(-3.0, 3.0, size=2)
    # affine_transform maps output coordinates o to input coordinates M @ o + offset.
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation / zoom
    centre_out = np.array([(SIZE - 1) / 2.0, (SIZE - 1) / 2.0]) + shift
    centre_in = np.array([3.5, 3.5])
    offset = centre_in - matrix @ centre_out
    alpha = ndimage.affine_transform(
        digit / 16.0, matrix, offset=offset, output_shape=(SIZE, SIZE), order=1, mode="constant", cval=0.0
    )
    alpha = np.clip(ndimage.gaussian_filter(alpha, sigma=1.0), 0.0, 1.0)[..., None]

    background = rng.uniform(40.0, 110.0) + rng.uniform(-15.0, 15.0, size=3)
    hand = np.array([225.0, 180.0, 150.0]) + rng.uniform(-25.0, 25.0) + rng.uniform(-10.0, 10.0, size=3)
    image = background * (1.0 - alpha) + hand * alpha
    image += rng.normal(0.0, 3.0, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def build(seed: int = SEED) -> dict[str, np.ndarray]:
    """The stand-in's arrays: train_set_x, train_set_y, test_set_x, test_set_y, list_classes."""
    digits = load_digits(n_class=N_CLASSES)
    rng = np.random.default_rng(seed)
    train_x, train_y, test_x, test_y = [], [], [], []
    for label in range(N_CLASSES):
        sources = digits.images[digits.target == label][rng.permutation(int(np.sum(digits.target == label)))]
        test_sources, train_sources = sources[:TEST_PER_CLASS], sources[TEST_PER_CLASS:]
        for digit in test_sources:
            test_x.append(_render(digit, rng))
            test_y.append(label)
        for i in range(TRAIN_PER_CLASS):  # ~160 sources per class: some are used twice, augmented differently
            train_x.append(_render(train_sources[i % len(train_sources)], rng))
            train_y.append(label)
    train_order = rng.permutation(len(train_x))
    test_order = rng.permutation(len(test_x))
    return {
        "train_set_x": np.stack(train_x)[train_order],
        "train_set_y": np.asarray(train_y, dtype=np.int64)[train_order],
        "test_set_x": np.stack(test_x)[test_order],
        "test_set_y": np.asarray(test_y, dtype=np.int64)[test_order],
        "list_classes": np.arange(N_CLASSES, dtype=np.int64),
    }


def _write(path: Path, datasets: dict[str, np.ndarray]) -> None:
    """Uncompressed, contiguous datasets, like the course's files; no timestamps, so same seed -> same bytes."""
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data, track_times=False)


def make_signs(out_dir: Path | str = DEFAULT_ROOT / FOLDER, seed: int = SEED) -> tuple[Path, Path]:
    """Write train_signs.h5 and test_signs.h5 into out_dir (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = build(seed)
    train_path, test_path = out / "train_signs.h5", out / "test_signs.h5"
    _write(train_path, {k: data[k] for k in ("train_set_x", "train_set_y", "list_classes")})
    _write(test_path, {k: data[k] for k in ("test_set_x", "test_set_y", "list_classes")})
    return train_path, test_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT,
                        help=f"stand-in root; the files go into ROOT/{FOLDER} (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of every random choice (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in make_signs(args.out / FOLDER, args.seed):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
