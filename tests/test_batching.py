"""Batching across requests: each request gets its own rows, and only its own
failures; the delay bound holds; shutdown finishes what is queued."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from app import create_app
from app.config import TestingConfig
from app.inference import Batcher
from app.inference import ModelUnavailable
from app.model_service import model_service
from tests.helpers import bearer
from tests.helpers import load_classifier
from tests.helpers import make_image_bytes
from tests.helpers import photo

POISON = -1.0


def rows(values) -> np.ndarray:
    """A fake preprocessed batch whose rows are identified by one number."""
    return np.array(values, dtype=np.float32).reshape(-1, 1)


class FakeNetwork:
    """Returns each row's number doubled; fails on POISON; can be held."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.release.wait(10)
        if (batch == POISON).any():
            raise RuntimeError("poisoned row")
        self.batches.append(len(batch))
        return batch * 2


def run_in_threads(batcher: Batcher, inputs: list[list[float]], queued=None):
    """One thread per request; with ``queued``, each is started once the one
    before it is in the queue (a known order)."""
    results: list = [None] * len(inputs)

    def work(i: int) -> None:
        try:
            results[i] = batcher.infer(rows(inputs[i]))
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for count, thread in enumerate(threads, start=1):
        thread.start()
        deadline = time.monotonic() + 5
        while queued and queued() < count and time.monotonic() < deadline:
            time.sleep(0.002)
    return threads, results


def hold_then_queue(network: FakeNetwork, batcher: Batcher, inputs):
    """Keep the network busy with a first request so the others queue up."""
    network.release.clear()
    first, first_result = run_in_threads(batcher, [[100.0]])
    assert network.entered.wait(5)
    threads, results = run_in_threads(
        batcher, inputs, queued=lambda: len(batcher._queue)
    )
    network.release.set()
    for thread in first + threads:
        thread.join(10)
    return first_result + results


def test_queued_requests_share_a_batch_and_get_their_own_rows():
    network = FakeNetwork()
    batcher = Batcher(network, max_size=4)
    batcher.start()
    results = hold_then_queue(network, batcher, [[1.0], [2.0, 3.0], [4.0], [5.0]])
    batcher.close()
    assert network.batches == [1, 4, 1]  # at most 4 images; requests never split
    values = [list(job.probabilities.ravel()) for job in results]
    assert values == [[200.0], [2.0], [4.0, 6.0], [8.0], [10.0]]
    assert [job.network_batch_size for job in results] == [1, 4, 4, 4, 1]


def test_a_failing_image_fails_only_its_own_request():
    network = FakeNetwork()
    batcher = Batcher(network, max_size=8)
    batcher.start()
    results = hold_then_queue(network, batcher, [[1.0], [POISON], [3.0]])
    batcher.close()
    assert isinstance(results[2], RuntimeError)
    assert results[1].probabilities.ravel().tolist() == [2.0]
    assert results[3].probabilities.ravel().tolist() == [6.0]


@pytest.mark.parametrize("delay_ms", [0, 60])
def test_a_lone_request_waits_at_most_the_delay(delay_ms):
    network = FakeNetwork()
    batcher = Batcher(network, max_size=8, max_delay_ms=delay_ms)
    batcher.start()
    started = time.perf_counter()
    job = batcher.infer(rows([1.0]))
    elapsed_ms = (time.perf_counter() - started) * 1000
    batcher.close()
    # Waiting for company never exceeds the bound (slack for a busy machine).
    assert delay_ms <= job.queue_ms + 1 and job.queue_ms <= delay_ms + 150
    assert elapsed_ms <= delay_ms + 300
    assert job.network_batch_size == 1


def test_a_full_batch_does_not_wait_for_the_delay():
    network = FakeNetwork()
    batcher = Batcher(network, max_size=2, max_delay_ms=5000)
    batcher.start()
    started = time.perf_counter()
    threads, results = run_in_threads(batcher, [[1.0], [2.0]])
    for thread in threads:
        thread.join(10)
    batcher.close()
    assert (time.perf_counter() - started) < 2.5
    assert network.batches == [2]


def test_shutdown_finishes_what_is_queued_then_refuses():
    network = FakeNetwork()
    batcher = Batcher(network, max_size=2)
    batcher.start()
    network.release.clear()
    threads, results = run_in_threads(batcher, [[1.0], [2.0], [3.0], [4.0], [5.0]])
    assert network.entered.wait(5)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    network.release.set()
    for thread in [*threads, closer]:
        thread.join(10)
    assert sorted(float(job.probabilities[0, 0]) for job in results) == [
        2.0,
        4.0,
        6.0,
        8.0,
        10.0,
    ]
    with pytest.raises(ModelUnavailable):
        batcher.infer(rows([1.0]))


# The real network ------------------------------------------------------------


@pytest.fixture(scope="module")
def batched_classifier(classifier, model_cache_dir):
    """The same f32 model as ``classifier``, behind a batcher."""
    model = load_classifier(
        model_cache_dir, "f32", batch_max_size=4, batch_max_delay_ms=50
    )
    yield model
    model.close()


# Softmax scores may move this much between a batch and a lone image.
TOLERANCE = {"f32": 1e-4, "bf16": 1e-2}


def assert_same_top5(batched, alone, tolerance=1e-4):
    assert [p.class_id for p in batched] == [p.class_id for p in alone]
    for b, a in zip(batched, alone, strict=True):
        assert b.score == pytest.approx(a.score, abs=tolerance)


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_threads_get_their_own_results_from_the_real_network(
    classifier, model_cache_dir, precision
):
    alone_model = load_classifier(model_cache_dir, precision)
    batched = load_classifier(
        model_cache_dir, precision, batch_max_size=4, batch_max_delay_ms=50
    )
    images = [classifier.decode(photo(seed)) for seed in range(8)]
    alone = [alone_model.classify([image]).predictions[0] for image in images]
    results: list = [None] * len(images)
    barrier = threading.Barrier(len(images))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = batched.classify([images[i]])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    batched.close()
    tolerance = TOLERANCE[batched.info.precision]
    for result, expected in zip(results, alone, strict=True):
        assert_same_top5(result.predictions[0], expected, tolerance)
    assert max(result.network_batch_size for result in results) > 1


def test_concurrent_posts_get_their_own_results_and_a_corrupt_one_fails_alone(
    app, token, classifier, batched_classifier
):
    with app.app_context():
        model_service().use(batched_classifier)
    uploads = [photo(seed + 20) for seed in range(6)]
    uploads.insert(3, make_image_bytes("JPEG")[:200])  # truncated: corrupt
    alone = [
        classifier.classify([classifier.decode(data)]).predictions[0]
        if i != 3
        else None
        for i, data in enumerate(uploads)
    ]
    responses: list = [None] * len(uploads)
    barrier = threading.Barrier(len(uploads))

    def post(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        responses[i] = client.post(
            "/predict",
            data={"image": (io.BytesIO(uploads[i]), f"photo{i}.jpg")},
            headers=bearer(token),
        )

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(uploads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for i, response in enumerate(responses):
        if i == 3:
            assert response.status_code == 400
            assert response.get_json()["error"]["code"] == "invalid_image"
            continue
        assert response.status_code == 200, response.get_data(as_text=True)
        (result,) = response.get_json()["results"]
        got = result["predictions"]
        assert [p["class_id"] for p in got] == [p.class_id for p in alone[i]]
        for g, a in zip(got, alone[i], strict=True):
            assert g["score"] == pytest.approx(a.score, abs=1e-4)
        assert "queue" in result["timing_ms"]
        assert "queue;dur=" in response.headers["Server-Timing"]


@pytest.mark.parametrize(
    ("setting", "value"), [("BATCH_MAX_SIZE", 0), ("BATCH_MAX_DELAY_MS", -1)]
)
def test_the_app_refuses_bad_batch_settings_when_it_is_created(setting, value):
    config = type("Config", (TestingConfig,), {setting: value})
    with pytest.raises(ValueError, match=setting):
        create_app(config)


def test_batching_is_off_with_batch_max_size_1(classifier):
    result = classifier.classify([classifier.decode(photo(1))])
    assert classifier._batcher is None
    assert (result.queue_ms, result.network_batch_size) == (0.0, 1)
