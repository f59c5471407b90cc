"""``make bench``: what the model, the pipeline and the served app do here.

``python -m bench.bench`` runs everything and prints the report; ``main`` in
``bench/bench.py`` reads as its table of contents. What needs clean thread
pools runs in a fresh interpreter as a program of its own, runnable by hand
(``--help``), which prints its result as one JSON line:

- ``bench.raw``: (a) the network alone, one backend, batch 1 to 8;
- ``bench.parallel``: (a) and (d) under load, one copy per core started together;
- ``bench.precisions``: (a2) OpenVINO f32 / bf16 / INT8, interleaved;
- ``bench.batching``: (f) batching across requests, in one worker's classifier;
- ``bench.cam``: (g) the class activation maps' extra time.

``bench.program`` starts them and holds what they share; ``bench.preprocessing``
is (b), in process. The report's sections: ``bench.in_process`` prints (a),
(a2), (b), (d), (f) and (g); ``bench.served`` serves each layout and prints
(c), the ratios, (e) and the layouts, with ``bench.live`` starting Gunicorn and
Locust through ``devtools``; ``bench.context`` holds what every section reads.
"""
