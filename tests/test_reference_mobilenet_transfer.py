"""reference/mobilenet_transfer.py against keras.applications and the course's verified numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import mobilenet_transfer as ref

ROOT = Path(__file__).resolve().parent.parent
tf_keras = pytest.importorskip("tf_keras")


def counts(model) -> tuple[int, int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable + frozen, trainable, frozen


@pytest.fixture(scope="module")
def model():
    return ref.alpaca_model()


def test_alpaca_model_has_the_courses_parameter_counts(model):
    assert counts(model) == (2_259_265, 1_281, 2_257_984)


def test_base_is_keras_mobilenet_v2_without_its_classifier(model):
    full = tf_keras.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=True, weights=None)
    assert full.count_params() == 3_538_984            # the course's full network
    classifier = 1280 * 1000 + 1000
    assert ref.base_of(model).count_params() == full.count_params() - classifier
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Sequential", "TFOpLambda", "TFOpLambda", "Functional", "GlobalAveragePooling2D",
        "Dropout", "Dense"]
    assert model.layers[-1].get_config()["activation"] == "linear"
    assert model.layers[-2].rate == 0.2


def test_fine_tuning_unfreezes_from_block_13_with_the_courses_counts():
    model = ref.alpaca_model()
    base = ref.base_of(model)
    assert base.layers[ref.FINE_TUNE_AT].name == "block_13_depthwise"
    ref.unfreeze_top(model)
    assert counts(model) == (2_259_265, 1_626_177, 633_088)
    assert not any(layer.trainable for layer in base.layers[:ref.FINE_TUNE_AT])
    assert all(layer.trainable for layer in base.layers[ref.FINE_TUNE_AT:])


def test_fine_tuning_settings_are_logit_loss_adam_at_a_tenth_and_accuracy():
    loss, optimizer, metrics = ref.fine_tuning_settings()
    assert loss.get_config()["from_logits"] is True
    assert type(optimizer).__name__ == "Adam"
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert metrics == ["accuracy"]


def test_preprocessing_maps_pixels_to_minus_one_one():
    x = np.array([[[[0.0, 127.5, 255.0]]]], dtype=np.float32)
    np.testing.assert_allclose(tf_keras.applications.mobilenet_v2.preprocess_input(x), [[[[-1.0, 0.0, 1.0]]]])


def test_augmenter_is_identity_at_inference_and_random_in_training():
    augmenter = ref.data_augmenter()
    x = np.arange(2 * 16 * 16 * 3, dtype=np.float32).reshape(2, 16, 16, 3)
    np.testing.assert_array_equal(augmenter(x, training=False), x)
    tf_keras.utils.set_random_seed(0)
    assert any(not np.allclose(augmenter(x, training=True), x) for _ in range(5))


def test_load_dataset_splits_one_folder_per_class(tmp_path):
    from PIL import Image

    rng = np.random.RandomState(0)
    for cls in ref.CLASS_NAMES:
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.randint(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.jpg")
    train, validation = ref.load_dataset(tmp_path)
    assert train.class_names == list(ref.CLASS_NAMES)
    assert sum(len(y) for _, y in train) == 16 and sum(len(y) for _, y in validation) == 4
    images, _ = next(iter(train))
    assert images.shape[1:] == (160, 160, 3)


def test_kernel_prelude_makes_adam_lr_the_learning_rate():
    """Run in a fresh interpreter: the prelude patches tf_keras for the process it runs in."""
    prelude = (ROOT / "exercises" / "mobilenet_transfer" / "kernel_prelude.py").read_text()
    script = prelude + (
        "\nimport tf_keras\n"
        "print(float(tf_keras.optimizers.Adam(lr=0.01).learning_rate.numpy()),"
        " float(tf_keras.optimizers.Adam(learning_rate=0.02).learning_rate.numpy()),"
        " float(tf_keras.optimizers.SGD(lr=0.03).learning_rate.numpy()),"
        " float(tf_keras.optimizers.Adam(0.04).learning_rate.numpy()))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert [round(float(v), 6) for v in out.stdout.split()] == [0.01, 0.02, 0.03, 0.04]
