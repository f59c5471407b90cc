"""The classifier with the real ResNet50 (random weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.inference import Labels
from app.inference import ModelUnavailable
from app.inference import WeightsUnavailable
from app.inference import build_classifier
from app.inference import load_labels
from app.inference import parse_weights
from tests.helpers import make_image_bytes


def test_scores_are_sorted_softmax_probabilities(classifier):
    image = classifier.decode(make_image_bytes("JPEG"))
    predictions = classifier.classify([image], top_k=20).predictions[0]
    scores = [p.score for p in predictions]
    assert len(predictions) == 20
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    probabilities = classifier.runtime(np.zeros((1, 224, 224, 3), dtype=np.float32))[0]
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)


def test_batch_keeps_input_order_and_matches_single_calls(classifier):
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    images = [
        classifier.decode(make_image_bytes("PNG", color=c, size=(64, 64)))
        for c in colours
    ]
    batch = classifier.classify(images, top_k=3).predictions
    singles = [classifier.classify([image], top_k=3).predictions[0] for image in images]
    for together, alone in zip(batch, singles, strict=True):
        assert [p.class_id for p in together] == [p.class_id for p in alone]
        for a, b in zip(together, alone, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)
    # Different inputs really give different outputs, so order is observable.
    assert [p.score for p in batch[0]] != [p.score for p in batch[1]]


@pytest.mark.slow
def test_random_weights_are_the_same_in_every_process(classifier):
    other = build_classifier("random", backend="tensorflow")
    other.load()
    image = classifier.decode(make_image_bytes("JPEG"))
    ours = classifier.classify([image]).predictions[0]
    theirs = other.classify([image]).predictions[0]
    assert [p.class_id for p in ours] == [p.class_id for p in theirs]


def test_model_info_flags_random_weights(classifier):
    info = classifier.info
    assert info.weights == "random" and info.random_weights is True
    assert info.backend in ("openvino", "tensorflow") and info.name == "resnet50"


def test_classify_before_load_is_model_unavailable():
    with pytest.raises(ModelUnavailable):
        build_classifier("random").classify([], top_k=1)


def test_labels_file_gives_names(tmp_path):
    entries = {str(i): [f"n{i:08d}", f"thing_{i}"] for i in range(1000)}
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(entries))
    labels = load_labels(path)
    assert labels.available
    assert labels[281] == ("n00000281", "thing_281")


def test_missing_labels_degrade_to_class_numbers(tmp_path):
    labels = load_labels(tmp_path / "missing.json")
    assert not labels.available
    assert labels[281] == (None, "class 281")


def test_corrupt_labels_degrade(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"0": ["n1", "only one"]}')
    assert load_labels(path) == Labels.unavailable()


def test_weights_setting_accepts_keywords_and_existing_files(tmp_path):
    assert parse_weights(None).kind == "imagenet"
    assert parse_weights("RANDOM").is_random
    weights_file = tmp_path / "mine.weights.h5"
    weights_file.write_bytes(b"x")
    spec = parse_weights(str(weights_file))
    assert spec.kind == "file" and spec.display_name == "mine.weights.h5"
    with pytest.raises(WeightsUnavailable, match="not a readable file"):
        parse_weights(str(tmp_path / "missing.h5"))


@pytest.mark.slow
def test_weights_file_round_trip(keras_classifier, tmp_path):
    """A weights file saved from the model loads into an identical network."""
    classifier = keras_classifier
    path = tmp_path / "resnet50.weights.h5"
    classifier.runtime.keras_model.save_weights(str(path))
    from_file = build_classifier(str(path), backend="tensorflow")
    from_file.load()
    image = classifier.decode(make_image_bytes("JPEG"))
    expected = classifier.classify([image]).predictions[0]
    actual = from_file.classify([image]).predictions[0]
    assert [p.class_id for p in actual] == [p.class_id for p in expected]
    assert from_file.info.weights == "resnet50.weights.h5"
    assert not from_file.info.random_weights
