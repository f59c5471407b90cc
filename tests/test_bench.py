"""The bench's command line, its steps and its programs' pure parts (no model)."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from types import SimpleNamespace

import pytest

from bench import bench
from bench import in_process
from bench import program
from bench import served
from bench.batching import Tally
from bench.context import Bench
from bench.live import Latency
from bench.served import served_layouts

PROGRAMS = ["raw", "parallel", "precisions", "batching", "cam"]
STEPS = ["bench", "context", "in_process", "served", "live", "preprocessing"]
MODULES = [*STEPS, "program", *PROGRAMS]


@pytest.mark.parametrize("name", MODULES)
def test_each_bench_module_imports(name):
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__
    if name in PROGRAMS:
        # Every option is an argument of measure, which program.main calls.
        options = {action.dest for action in module.options()._actions} - {"help"}
        assert options == set(inspect.signature(module.measure).parameters)


def test_bench_command_line_keeps_its_flags():
    defaults = bench.parse_args([])
    assert (defaults.image, defaults.duration, defaults.users) == (None, 60, 10)
    assert not (defaults.layouts or defaults.skip_served or defaults.only_cam)
    assert not defaults.skip_precisions
    args = bench.parse_args(
        ["--image", "p.jpg", "--duration", "5", "--users", "3", "--layouts"]
        + ["--skip-served", "--only-cam", "--skip-precisions"]
    )
    assert (str(args.image), args.duration, args.users) == ("p.jpg", 5, 3)
    assert args.layouts and args.skip_served and args.only_cam
    assert args.skip_precisions


# main reads as the report's table of contents: each step in report order.
EVERY_STEP = [
    "print_header",
    "report_model_ceiling",  # (a)
    "report_precisions",  # (a2)
    "report_preprocessing",  # (b)
    "report_pipeline_ceiling",  # (d)
    "report_batching",  # (f)
    "report_cam_cost",  # (g)
    "layouts_to_serve",
    "serve",
    "report_served",  # (c)
    "report_ratios",
    "report_workers",  # (e)
    "report_layouts",
]


@pytest.fixture
def steps(monkeypatch, tmp_path):
    """Every step of ``bench.main`` replaced by one that records its name."""
    called = []
    answers = {
        "report_model_ceiling": in_process.Ceiling("openvino", 30.0),
        "report_pipeline_ceiling": 20.0,
        "serve": ([], None),
    }

    def recorder(name):
        def step(*args, **kwargs):
            called.append(name)
            return answers.get(name)

        return step

    for name in EVERY_STEP:
        monkeypatch.setattr(bench, name, recorder(name))
    run = SimpleNamespace(openvino=True, cache=tmp_path, image=None, workdir=tmp_path)
    monkeypatch.setattr(bench, "prepare", lambda args: run)
    monkeypatch.setattr(bench, "parallel_ceiling", lambda *args, **kwargs: 21.0)
    return SimpleNamespace(called=called, run=run)


def without(*names: str) -> list[str]:
    return [name for name in EVERY_STEP if name not in names]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], without("report_layouts")),
        (["--layouts"], EVERY_STEP),
        (["--skip-precisions"], without("report_precisions", "report_layouts")),
        (["--skip-served"], EVERY_STEP[: EVERY_STEP.index("layouts_to_serve")]),
        (["--only-cam"], ["print_header", "report_cam_cost"]),
    ],
)
def test_main_runs_the_steps_in_report_order(steps, flags, expected):
    assert bench.main(flags) == 0
    assert steps.called == expected


def test_without_openvino_the_openvino_sections_are_left_out(steps):
    steps.run.openvino = False
    bench.main(["--skip-served"])
    assert steps.called == [
        "print_header",
        "report_model_ceiling",
        "report_preprocessing",
        "report_pipeline_ceiling",
    ]


def test_served_layouts_start_with_the_two_the_ratios_divide_by():
    labels = [layout.label for layout in served_layouts(int8=False, more=False)]
    assert labels == ["defaults", "before: OPENVINO_PRECISION=f32 BATCH_MAX_SIZE=1"]
    more = served_layouts(int8=True, more=True)
    assert more[2].settings == {"OPENVINO_PRECISION": "int8"}
    assert [layout.profiles for layout in more] == [True] * 3 + [False] * 5
    assert more[3].settings == {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "16",
        "INTRA_OP_THREADS": "1",
    }


def test_a_program_is_run_as_a_module_and_answers_on_its_last_line(tmp_path):
    assert program.command("raw", "--threads", 2, "--cache", tmp_path) == [
        sys.executable,
        *("-m", "bench.raw", "--threads", "2", "--cache", str(tmp_path)),
    ]
    assert program.answer_in('loading...\n{"1": {"ms": 5.0}}\n') == {"1": {"ms": 5.0}}
    assert program.environment()["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_programs_parse_their_options(tmp_path):
    from bench import batching
    from bench import cam
    from bench import parallel
    from bench import precisions
    from bench import raw

    assert raw.options().parse_args([]).threads == program.CORES
    photo = ["--image", str(tmp_path / "p.jpg")]
    configs = batching.options().parse_args(photo).configs
    assert configs == [(1, 0), (2, 0), (4, 0), (8, 0), (4, 5), (8, 10)]
    chosen = precisions.options().parse_args([*photo, "--precisions", "f32,int8"])
    assert chosen.precisions == ["f32", "int8"]
    assert cam.options().parse_args(photo).precision == "auto"
    assert parallel.options().parse_args(["--work", "model"]).image is None
    with pytest.raises(ValueError, match="needs --image"):
        parallel.step_for(None, "pipeline", None)


def test_a_program_answers_what_measure_returns(capsys):
    def measure(cache, threads):
        return {"threads": threads, "cache": str(cache)}

    options = program.parser("fake", "A fake program.")
    assert program.main(options, measure, ["--threads", "3", "--cache", "c"]) == 0
    answer = program.answer_in(capsys.readouterr().out)
    assert answer == {"threads": 3, "cache": "c"}


def test_steps_take_turns_after_one_untimed_call_each():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "ab"}
    times = program.interleaved(steps, rounds=2)
    assert calls == ["a", "b"] * 3
    assert {name: len(t) for name, t in times.items()} == {"a": 2, "b": 2}
    assert len(program.timed(lambda: None, 4)) == 4


def test_median_is_the_upper_middle_value():
    assert program.median([3.0, 1.0, 2.0]) == 2.0
    assert program.median([4.0, 1.0, 3.0, 2.0]) == 3.0


def test_batching_summary_of_a_tally():
    tally = Tally(seconds=2.0, latencies=[0.01 * i for i in range(1, 21)])
    tally.batch_sizes = [1, 2, 3, 2]
    summary = tally.summary(4, 5, "f32")
    assert summary["img_s"] == 10.0
    assert summary["p50"] == pytest.approx(110.0)  # the 11th of 20
    assert summary["p95"] == pytest.approx(190.0)  # index int(0.95 * 19) = 18
    assert (summary["size"], summary["delay"], summary["batch"]) == (4, 5, 2.0)
    assert summary["precision"] == "f32"


def canned_locust(rps: float) -> dict:
    figures = {"requests": 100, "failures": 0, "rps": rps, "p50": 40.0, "p95": 60.0}
    figures |= {"p99": 70.0, "max": 80.0, "avg": 45.0}
    return figures | {"server_cores": 1.5, "locust_cores": 0.2}


def test_the_report_from_canned_figures(monkeypatch, capsys, tmp_path):
    """Every section in report order, from figures given instead of measured."""
    photo = tmp_path / "p.jpg"
    layouts = served_layouts(int8=True, more=True)
    runs = [
        served.ServedRun(
            layout, canned_locust(20.0 + i), 30.0, canned_locust(2.0), [300.0 + i]
        )
        for i, layout in enumerate(layouts)
    ]
    latency = Latency(30.0, 40.0, "inference;dur=9")
    defaults = served.Defaults(latency, "phone.jpg", latency, [300.0], [2.0], 5.0)
    precision = {"ran": "openvino-f32", "max_diff": 0.0, "1": 50.0, "4": 60.0}
    cam_ms = {f"{name}:{b}": 10.0 * b for name in ("without", "with") for b in (1, 4)}
    cam_ms |= {f"{name}:{b}": 0.5 for name in ("extra", "maps") for b in (1, 4)}
    measured = {  # what the in-process sections would measure
        "raw_ceiling": lambda *a: {1: {"ms": 10.0, "img_s": 100.0}, 2: {"img_s": 133}},
        "parallel_ceiling": lambda *a, **k: 50.0,
        "ensure_int8": lambda *a: True,
        "precision_ceilings": lambda *a: {"f32": precision | {"8": 61.0}},
        "median_ms": lambda *a: 2.0,
        "batching_in_process": lambda *a: [
            {"size": 1, "delay": 0, "img_s": 10.0, "p50": 100.0, "p95": 200.0}
            | {"batch": 1.0, "precision": "bf16"}
        ],
        "cam_cost": lambda *a: {"ran": "openvino-bf16", "ms": cam_ms},
    }
    for name, value in measured.items():
        monkeypatch.setattr(in_process, name, value)
    called_by_main = {
        "prepare": lambda args: Bench(
            args, tmp_path, tmp_path, photo, "p.jpg", b"x" * 2048, ["openvino"]
        ),
        "parallel_ceiling": lambda *a, **k: 50.0,
        "layouts_to_serve": lambda run: layouts,
        "serve": lambda run, layouts: (runs, defaults),
    }
    for name, value in called_by_main.items():
        monkeypatch.setattr(bench, name, value)
    monkeypatch.setattr("app.inference.native_precision", lambda: "bf16")

    assert bench.main(["--layouts"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^## (\(\w+\)|\w+)", out, re.MULTILINE) == [
        *("(a)", "(a2)", "(b)", "(d)", "(f)", "(g)", "(c)", "Ratios", "(e)", "Worker")
    ]
    assert "| openvino | 10.0 | 100.0 | 50.0 | 2 | 133.0 |" in out
    assert "| f32 | openvino-f32 | 50.0 | 60.0 | 61.0 | 1.00 | 0.0000 |" in out
    assert "| OPENVINO_PRECISION=int8 / before, saturation | 1.05 |" in out
    assert out.count("saturation (no wait)") == 3  # profiles of 3 of 8 layouts
    assert "Worker RSS after the run: 300 MB;" in out
    assert (
        "Worker RSS after before: OPENVINO_PRECISION=f32 BATCH_MAX_SIZE=1: 301 MB."
        in out
    )


def test_under_an_avx2_cap_the_report_says_so_and_leaves_bf16_out(
    monkeypatch, capsys, tmp_path
):
    """``ONEDNN_MAX_CPU_ISA=AVX2 make bench`` stands in for a CPU without
    AVX-512: bf16 would not compile there, so (a2) must not ask for it."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr("app.inference.native_precision", lambda: "f32")
    monkeypatch.setattr(in_process, "ensure_int8", lambda *a: True)
    asked = []

    def ceilings(cache, image, precisions):
        asked.extend(precisions)
        row = {"ran": "openvino-f32", "max_diff": 0.0, "1": 5.0, "4": 6.0, "8": 6.0}
        return {precision: row for precision in precisions}

    monkeypatch.setattr(in_process, "precision_ceilings", ceilings)
    run = Bench(
        SimpleNamespace(), tmp_path, tmp_path, tmp_path / "p.jpg", "p.jpg", b"x", []
    )
    bench.print_header(run)
    in_process.report_precisions(run)
    out = capsys.readouterr().out
    assert asked == ["f32", "int8"]
    assert "oneDNN is capped at AVX2" in out
    assert "auto (the default) runs f32 on this CPU" in out
