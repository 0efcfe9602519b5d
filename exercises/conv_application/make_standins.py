"""Write stand-ins for the two datasets of the course's Convolution_model_Application notebook
(docs/course_facts.md §3), neither of which is public.

Happy House (``load_happy_dataset()``), in the course's format:
``train_happy.h5`` (``train_set_x`` uint8 (600, 64, 64, 3), ``train_set_y`` int64 (600,),
``list_classes`` int64 [0, 1]) and ``test_happy.h5`` (``test_set_x`` uint8 (150, 64, 64, 3),
``test_set_y`` int64 (150,), ``list_classes``). Label 1 is "happy" (smiling), 0 "not happy".
The images are synthetic faces drawn with NumPy: a face (an ellipse of skin colour) on a
background with a light gradient, two eyes, sometimes hair, and a mouth that curves up (a smile,
label 1) or down (label 0), with random position, size, colours, mouth width and curvature, and
pixel noise. Half of each split is happy, in shuffled order.

SIGNS (``load_signs_dataset()``): ``train_signs.h5`` and ``test_signs.h5``, written by the
resnet50 exercise's ``make_signs_standin.py`` (imported from its file: one source of truth for
the SIGNS stand-in).

Everything derives from one seed, so the same seed gives the same files on every machine.

    python exercises/conv_application/make_standins.py [--out ROOT] [--seed N]

writes ROOT/datasets/*.h5, the folder the notebook reads (default ROOT: this script's folder; the
grader calls it with its data cache, see grader/spec.py DataSpec).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE
FOLDER = "datasets"   # the folder the notebook's load_happy_dataset() / load_signs_dataset() read
SIGNS_MAKER = HERE.parent / "resnet50" / "make_signs_standin.py"

SIZE = 64
TRAIN_PER_CLASS = 300
TEST_PER_CLASS = 75
SEED = 2017


def _signs_maker() -> ModuleType:
    """exercises/resnet50/make_signs_standin.py, loaded from its path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("convgrade_resnet50_make_signs_standin", SIGNS_MAKER)
    assert spec and spec.loader, SIGNS_MAKER
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- Happy House faces ----------------------------------------------------------------------------
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5


def _coverage(distance: np.ndarray) -> np.ndarray:
    """Anti-aliased inside-ness from a signed distance (negative inside): 1 inside, 0 outside."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    image *= 1.0 - alpha[..., None]
    image += alpha[..., None] * colour


def render_face(happy: bool, rng: np.random.Generator) -> np.ndarray:
    """One (64, 64, 3) uint8 face; the mouth curves up if `happy`, down otherwise."""
    # Background: a wall colour with a soft vertical gradient.
    wall = rng.uniform(60.0, 200.0, size=3)
    slope = rng.uniform(-0.6, 0.6, size=3)
    image = wall + slope * (_YY[..., None] - SIZE / 2)

    # The face: an ellipse, a little off centre.
    cx, cy = SIZE / 2 + rng.uniform(-4.0, 4.0), SIZE / 2 + rng.uniform(-3.0, 3.0)
    rx = rng.uniform(17.0, 23.0)
    ry = rx * rng.uniform(1.05, 1.25)
    skin = np.array([225.0, 185.0, 150.0]) * rng.uniform(0.55, 1.1) + rng.uniform(-12.0, 12.0, size=3)
    skin = np.clip(skin, 30.0, 255.0)
    radial = np.sqrt(((_XX - cx) / rx) ** 2 + ((_YY - cy) / ry) ** 2)
    _paint(image, _coverage((radial - 1.0) * min(rx, ry)), skin)

    # Hair on some faces: the top of a slightly larger ellipse, above the forehead line.
    if rng.random() < 0.6:
        hair = rng.uniform(10.0, 120.0) * np.array([1.0, 0.8, 0.6]) + rng.uniform(-10.0, 10.0, size=3)
        top = cy - ry * rng.uniform(0.45, 0.65)
        outer = np.sqrt(((_XX - cx) / (rx * 1.08)) ** 2 + ((_YY - cy) / (ry * 1.08)) ** 2)
        alpha = _coverage((outer - 1.0) * rx) * np.clip(top - _YY + 0.5, 0.0, 1.0)
        _paint(image, alpha, np.clip(hair, 0.0, 255.0))

    # Eyes: two dark discs.
    eye_dx, eye_y = rx * rng.uniform(0.32, 0.45), cy - ry * rng.uniform(0.1, 0.3)
    eye_r = rng.uniform(1.8, 3.0)
    eye = np.clip(rng.uniform(10.0, 60.0) + rng.uniform(-8.0, 8.0, size=3), 0.0, 255.0)
    for side in (-1.0, 1.0):
        distance = np.sqrt((_XX - (cx + side * eye_dx)) ** 2 + (_YY - eye_y) ** 2) - eye_r
        _paint(image, _coverage(distance), eye)

    # The mouth: a thick parabola y = y0 - bend * u^2 for u = (x - cx) / half_width in [-1, 1];
    # bend > 0 raises the corners (a smile), bend < 0 lowers them.
    half_width = rx * rng.uniform(0.35, 0.55)
    bend = rng.uniform(3.0, 6.5) * (1.0 if happy else -1.0)
    y0 = cy + ry * rng.uniform(0.35, 0.5) + bend / 2   # the mouth's middle height does not tell the class
    thickness = rng.uniform(1.2, 2.0)
    u = np.clip((_XX - cx) / half_width, -1.0, 1.0)
    curve_y = y0 - bend * u ** 2
    beyond = np.maximum(np.abs(_XX - cx) - half_width, 0.0)   # past the corners: round ends
    distance = np.sqrt((_YY - curve_y) ** 2 + beyond ** 2) - thickness
    lips = np.clip(np.array([150.0, 50.0, 60.0]) * rng.uniform(0.6, 1.1) + rng.uniform(-10.0, 10.0, size=3),
                   0.0, 255.0)
    _paint(image, _coverage(distance), lips)

    image += rng.normal(0.0, 5.0, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def build_happy(seed: int = SEED) -> dict[str, np.ndarray]:
    """The Happy stand-in's arrays: train_set_x, train_set_y, test_set_x, test_set_y, list_classes."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        labels = np.repeat(np.array([0, 1], dtype=np.int64), per_class)[rng.permutation(2 * per_class)]
        images = np.stack([render_face(bool(label), rng) for label in labels])
        splits[f"{split}_set_x"], splits[f"{split}_set_y"] = images, labels
    splits["list_classes"] = np.array([0, 1], dtype=np.int64)
    return splits


def _write(path: Path, datasets: dict[str, np.ndarray]) -> None:
    """Uncompressed datasets like the course's files; no timestamps, so same seed -> same bytes."""
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data, track_times=False)


def make_happy(out_dir: Path | str = DEFAULT_ROOT / FOLDER, seed: int = SEED) -> tuple[Path, Path]:
    """Write train_happy.h5 and test_happy.h5 into out_dir (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = build_happy(seed)
    train_path, test_path = out / "train_happy.h5", out / "test_happy.h5"
    _write(train_path, {k: data[k] for k in ("train_set_x", "train_set_y", "list_classes")})
    _write(test_path, {k: data[k] for k in ("test_set_x", "test_set_y", "list_classes")})
    return train_path, test_path


def make_all(out_dir: Path | str = DEFAULT_ROOT / FOLDER, seed: int = SEED) -> list[Path]:
    """Both datasets into out_dir: the Happy stand-in (this seed) and SIGNS (its own default seed,
    so that it is byte for byte the resnet50 exercise's stand-in)."""
    return [*make_happy(out_dir, seed), *_signs_maker().make_signs(out_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT,
                        help=f"stand-in root; the files go into ROOT/{FOLDER} (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="seed of the Happy faces (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in make_all(args.out / FOLDER, args.seed):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
