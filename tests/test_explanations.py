"""Why this label: class activation maps from the real network (random
weights), through the batching loop, stored, and in the API."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.explanations import describe
from app.explanations import region
from app.http.params import BadParameter
from app.http.params import parse_bool
from app.inference import build_classifier
from app.inference.cam import activation_maps
from app.inference.cam import normalise
from tests.helpers import load_classifier
from tests.helpers import photo

# f32: mean(CAM_c) + b_c equals the logit to float32 accumulation error.
RELATIVE = 1e-3


def logits_of(classifier, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's softmax and the logits recomputed from its features."""
    probabilities, features = classifier.runtime.forward(batch)
    runtime = classifier.runtime
    logits = features.mean(axis=(1, 2)) @ runtime.class_weights + runtime.class_bias
    return probabilities, logits


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def assert_identity(result, bias: np.ndarray) -> None:
    """For every returned label: mean(CAM_c) + b_c is its logit, i.e. its
    log-probability plus one constant per image (the log-sum-exp)."""
    assert result.maps is not None
    for predictions, maps in zip(result.predictions, result.maps, strict=True):
        assert maps.shape == (len(predictions), 7, 7)
        pairs = zip(predictions, maps, strict=True)
        logits = np.array([m.mean() + bias[p.class_id] for p, m in pairs])
        scores = np.array([p.score for p in predictions])
        # Scores that underflowed to 0 have no log; their logits are checked
        # against the recomputed ones in the test of exactness.
        kept = scores > 1e-30
        log_p = np.log(scores[kept])
        offsets = logits[kept] - log_p  # the same log-sum-exp for every label
        scale = max(1.0, float(np.abs(logits).max()))
        assert np.ptp(offsets) <= RELATIVE * scale, (logits, log_p)


def images(classifier, count: int = 4):
    return [classifier.decode(photo(seed)) for seed in range(count)]


@pytest.fixture(params=["openvino", "tensorflow"])
def any_classifier(request, classifier, keras_classifier):
    """The served runtime (OpenVINO f32) and the Keras reference."""
    if request.param == "openvino" and classifier.info.backend != "openvino":
        pytest.skip("OpenVINO is not installed")
    return classifier if request.param == "openvino" else keras_classifier


@pytest.mark.slow
def test_maps_are_exact_the_mean_plus_bias_is_the_logit(any_classifier):
    model = any_classifier
    assert model.explains
    from app.inference.images import preprocess_batch

    decoded = images(model, 3)
    probabilities, logits = logits_of(model, preprocess_batch(decoded))
    # The weights and features are the network's own: they give its softmax.
    np.testing.assert_allclose(softmax(logits), probabilities, rtol=1e-3, atol=1e-6)
    result = model.classify(decoded, top_k=5)
    assert_identity(result, model.runtime.class_bias)
    bias = model.runtime.class_bias
    rows = zip(logits, result.predictions, result.maps, strict=True)
    for row, predictions, maps in rows:
        for p, m in zip(predictions, maps, strict=True):
            expected = row[p.class_id]
            assert m.mean() + bias[p.class_id] == pytest.approx(
                expected, rel=RELATIVE, abs=RELATIVE
            )


@pytest.mark.slow
def test_openvino_and_keras_give_the_same_maps(classifier, keras_classifier):
    if classifier.info.backend != "openvino":
        pytest.skip("OpenVINO is not installed")
    decoded = images(classifier, 2)
    ours = classifier.classify(decoded, top_k=3)
    theirs = keras_classifier.classify(decoded, top_k=3)
    for a, b in zip(ours.maps, theirs.maps, strict=True):
        scale = float(np.abs(b).max())
        np.testing.assert_allclose(a, b, atol=1e-3 * max(1.0, scale))


def concurrently(model, decoded):
    results: list = [None] * len(decoded)
    barrier = threading.Barrier(len(decoded))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = model.classify([decoded[i]], top_k=5)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(decoded))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "tensorflow"])
def test_each_request_gets_its_own_maps_through_the_batching_loop(
    classifier, keras_classifier, model_cache_dir, backend
):
    if backend == "openvino":
        if classifier.info.backend != "openvino":
            pytest.skip("OpenVINO is not installed")
        alone_model = classifier
        batched = load_classifier(
            model_cache_dir, "f32", batch_max_size=4, batch_max_delay_ms=50
        )
    else:
        alone_model = keras_classifier
        batched = build_classifier(
            "random", backend="tensorflow", batch_max_size=4, batch_max_delay_ms=50
        )
        batched.load()
    try:
        decoded = images(classifier, 6)
        results = concurrently(batched, decoded)
    finally:
        batched.close()
    assert max(result.network_batch_size for result in results) > 1
    for image, result in zip(decoded, results, strict=True):
        assert_identity(result, batched.runtime.class_bias)
        alone = alone_model.classify([image], top_k=5)
        assert [p.class_id for p in result.predictions[0]] == [
            p.class_id for p in alone.predictions[0]
        ]
        scale = max(1.0, float(np.abs(alone.maps[0]).max()))
        np.testing.assert_allclose(result.maps[0], alone.maps[0], atol=1e-3 * scale)


def test_a_runtime_without_the_second_output_gives_no_maps(model_cache_dir):
    model = build_classifier(
        "random", model_cache_dir=model_cache_dir, openvino_precision="f32"
    )
    model.runtime.features = False
    model.load()
    result = model.classify(images(model, 1))
    assert result.maps is None and not model.explains


# The arithmetic ----------------------------------------------------------------


def test_activation_maps_match_the_definition():
    rng = np.random.default_rng(0)
    features = rng.random((2, 7, 7, 16), dtype=np.float32)
    weights = rng.standard_normal((16, 10)).astype(np.float32)
    ids = np.array([[3, 1], [9, 0]])
    maps = activation_maps(features, weights, ids)
    assert maps.shape == (2, 2, 7, 7)
    for n in range(2):
        for j, c in enumerate(ids[n]):
            expected = np.einsum("yxk,k->yx", features[n], weights[:, c])
            np.testing.assert_allclose(maps[n, j], expected, rtol=1e-5)


def test_normalise_scales_each_map_to_0_1_and_flat_maps_to_zero():
    ramp = np.arange(49, dtype=np.float32).reshape(7, 7) - 10
    maps = np.stack([ramp, np.ones((7, 7))])
    scaled = normalise(maps)
    assert scaled[0].min() == 0.0 and scaled[0].max() == 1.0
    assert (scaled[1] == 0).all()


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ((0, 0), "upper left"),
        ((0, 3), "upper centre"),
        ((3, 3), "centre"),
        ((3, 6), "middle right"),
        ((6, 0), "lower left"),
    ],
)
def test_regions_are_named_in_words(cell, words):
    assert region(*cell) == words


def test_describe_says_where_the_map_is_strongest():
    grid = np.zeros((7, 7))
    grid[0, 0], grid[0, 1] = 1.0, 0.6
    assert describe(grid.tolist()) == (
        "strongest in the upper left; covers about 4% of the photo"
    )
    assert "flat" in describe(np.zeros((7, 7)).tolist())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("true", True), ("1", True), ("false", False)]
    + [("0", False), (True, True)],
)
def test_parse_bool_accepts_true_false_1_0(value, expected):
    assert parse_bool(value, "explain") is expected


@pytest.mark.parametrize("value", ["yes", "TRUE", " 1", "2", "on", 1])
def test_parse_bool_refuses_anything_else(value):
    with pytest.raises(BadParameter) as caught:
        parse_bool(value, "explain")
    assert caught.value.code == "invalid_explain"


# The API -------------------------------------------------------------------------


def assert_explanation(result: dict) -> None:
    explanation = result["explanation"]
    assert explanation["size"] == [7, 7]
    labels = [p["label"] for p in result["predictions"]]
    assert sorted(explanation["maps"]) == sorted(labels)  # JSON keys are sorted
    for grid in explanation["maps"].values():
        values = np.array(grid)
        assert values.shape == (7, 7)
        assert values.min() == 0.0 and values.max() == 1.0


def test_predict_explain_true_adds_the_maps_and_false_leaves_them_out(api):
    body = api.predict(photo(1), explain="true").get_json()
    (result,) = body["results"]
    assert_explanation(result)
    plain = api.predict(photo(2), explain="0").get_json()["results"][0]
    assert "explanation" not in plain
    # Stored with the prediction: the API gives them back when asked.
    url = f"/api/predictions/{result['id']}"
    stored = api.get(url + "?explain=1").get_json()
    assert stored["explanation"] == result["explanation"]
    assert "explanation" not in api.get(url).get_json()


def test_a_cache_hit_copies_the_maps_of_its_labels(api):
    first = api.predict(photo(3), explain="true").get_json()["results"][0]
    again = api.predict(photo(3), explain="true", top_k="2").get_json()
    (hit,) = again["results"]
    assert hit["cached"] is True
    labels = [p["label"] for p in first["predictions"][:2]]
    assert hit["explanation"]["maps"] == {
        label: first["explanation"]["maps"][label] for label in labels
    }


@pytest.mark.parametrize("value", ["yes", "TRUE", "2"])
def test_a_bad_explain_is_a_400_invalid_explain(api, value):
    response = api.predict(photo(4), explain=value)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_explain"
    response = api.get(f"/api/predictions/1?explain={value}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_explain"


# bf16 (the served default where the CPU has it): the network's own dense layer
# runs in bf16, the maps in f32 from bf16 features.
BF16_RELATIVE = 2e-2


def test_the_identity_holds_at_bf16_within_its_tolerance(model_cache_dir):
    model = load_classifier(model_cache_dir, "bf16")
    if model.info.precision != "bf16":
        pytest.skip("this CPU has no native bf16")
    result = model.classify(images(model, 3), top_k=5)
    for predictions, maps in zip(result.predictions, result.maps, strict=True):
        bias = model.runtime.class_bias
        logits = np.array(
            [
                m.mean() + bias[p.class_id]
                for p, m in zip(predictions, maps, strict=True)
            ]
        )
        offsets = logits - np.log([p.score for p in predictions])
        scale = max(1.0, float(np.abs(logits).max()))
        assert np.ptp(offsets) <= BF16_RELATIVE * scale, (logits, offsets)
