"""RESHAPE removal keeps outputs bit for bit and shrinks the arena; arena search is tight."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.tflite.flatbuffer import unpack_model
from microspeech.tflite.graph import free_reshape_batch, remove_reshape_before_fully_connected
from microspeech.tflite.metadata import read_parameters
from microspeech.tflite.profile import (
    arena_report,
    estimate_mcu_latency,
    find_min_arena_size,
    host_latency,
    profile_model,
)
from microspeech.tflite.runtime import TfliteRunner
from microspeech.tflite.summary import summarize_tflite

pytestmark = pytest.mark.xdist_group("tflite_models")


@pytest.mark.parametrize("model", ["mltk_tflite_bytes", "seed_tflite_bytes"])
def test_reshape_removal_is_exact(model, request, random_features):
    original = request.getfixturevalue(model)
    slim = remove_reshape_before_fully_connected(original)
    summary = summarize_tflite(slim)
    assert [layer.opcode for layer in summary.layers] == ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert summary.layers[1].inputs[0].shape == (1, 25, 20, 8)
    assert summary.total_macs == 336_000 and summary.total_ops == 676_012
    assert len(summary.tensors) == len(summarize_tflite(original).tensors) - 2  # reshaped + shape tensors
    reference = TfliteRunner(original, "tflm").predict(random_features)
    for backend in ("tflm", "litert"):
        assert np.array_equal(TfliteRunner(slim, backend).predict(random_features), reference)
    assert read_parameters(slim) == read_parameters(original)
    assert remove_reshape_before_fully_connected(slim) == slim  # nothing left to remove


def test_reshape_after_pooling(tiny_tflite_bytes):
    assert "RESHAPE" in [layer.opcode for layer in summarize_tflite(tiny_tflite_bytes).layers]
    tiny_slim = remove_reshape_before_fully_connected(tiny_tflite_bytes)
    assert "RESHAPE" not in [layer.opcode for layer in summarize_tflite(tiny_slim).layers]
    x = np.random.default_rng(5).integers(-128, 128, (16, 12, 10, 2), dtype=np.int8)
    assert np.array_equal(
        TfliteRunner(tiny_slim, "tflm").predict(x), TfliteRunner(tiny_tflite_bytes, "litert").predict(x)
    )


def _reshape_targets(tflite_bytes: bytes) -> list[list[int]]:
    model = unpack_model(tflite_bytes)
    graph = model.subgraphs[0]
    targets = []
    for layer, op in zip(summarize_tflite(tflite_bytes).layers, graph.operators, strict=True):
        if layer.opcode == "RESHAPE":
            target = graph.tensors[int(op.inputs[1])]
            targets.append(np.frombuffer(bytes(model.buffers[target.buffer].data), "<i4").tolist())
    return targets


def test_a_reshape_between_layers_takes_any_batch_and_computes_the_same(middle_reshape_tflite_bytes):
    original = remove_reshape_before_fully_connected(middle_reshape_tflite_bytes)
    assert _reshape_targets(original) == [[1, 49, 10, 1]]
    freed = free_reshape_batch(original)
    assert _reshape_targets(freed) == [[-1, 49, 10, 1]]
    assert free_reshape_batch(freed) == freed  # nothing left to free
    x = np.random.default_rng(6).integers(-128, 128, (70, 49, 40, 1), dtype=np.int8)
    reference = TfliteRunner(original, "tflm").predict(x)
    for backend in ("tflm", "litert"):
        assert np.array_equal(TfliteRunner(freed, backend).predict(x), reference)
    # LiteRT now runs it on batches of inputs (stream scoring does), where the original refuses.
    assert TfliteRunner(original, "litert")._batch_interpreter(2) is None
    batched = TfliteRunner(freed, "litert")
    assert batched._batch_interpreter(2) is not None and batched._batch_interpreter(32) is not None
    assert np.array_equal(batched.predict(x), reference)


@pytest.mark.parametrize("model", ["mltk_tflite_bytes", "seed_tflite_bytes", "tiny_tflite_bytes"])
def test_min_arena_is_tight(model, request):
    tflite_bytes = request.getfixturevalue(model)
    size = find_min_arena_size(tflite_bytes)
    runner = TfliteRunner(tflite_bytes, "tflm", arena_size=size)
    runner.predict_one(np.zeros(runner.input_details.shape, np.int8))
    with pytest.raises((RuntimeError, ValueError), match="arena"):  # ValueError: below the floor
        TfliteRunner(tflite_bytes, "tflm", arena_size=size - 1).predict_one(
            np.zeros(runner.input_details.shape, np.int8)
        )


def test_reshape_removal_shrinks_arena(mltk_tflite_bytes):
    before = arena_report(mltk_tflite_bytes)
    after = arena_report(remove_reshape_before_fully_connected(mltk_tflite_bytes))
    # the 4000-byte reshaped copy no longer overlaps the conv output
    assert before.head_bytes == 8000 and after.head_bytes < 6000
    assert before.min_arena_bytes - after.min_arena_bytes > 2000
    assert before.min_arena_bytes == before.head_bytes + before.tail_bytes
    # the 32-bit estimate shrinks only the bookkeeping, never the tensors
    assert before.head_bytes < before.estimated_32bit_bytes < before.min_arena_bytes


def test_latency_and_estimate(mltk_tflite_bytes):
    host = host_latency(mltk_tflite_bytes, runs=20)
    assert 0 < host.p10_ms <= host.median_ms <= host.p90_ms and host.runs == 20
    summary = summarize_tflite(mltk_tflite_bytes)
    fast, slow = estimate_mcu_latency(summary, 156.0), estimate_mcu_latency(summary, 78.0)
    assert slow.latency_ms == pytest.approx(2 * fast.latency_ms)
    assert slow.cycles > summary.total_macs  # at least a cycle per MAC
    assert sum(slow.per_layer_ms) == pytest.approx(slow.latency_ms)
    with pytest.raises(ValueError, match="clock"):
        estimate_mcu_latency(summary, 0)


def test_profile_report(mltk_tflite_path):
    report = profile_model(mltk_tflite_path, runs=20)
    data = report.to_dict()
    assert data["total_macs"] == 336_000 and data["arena"]["min_arena_bytes"] == report.arena.min_arena_bytes
    assert data["without_reshape"]["total_ops"] == 676_012
    assert data["without_reshape"]["min_arena_bytes"] < report.arena.min_arena_bytes


@pytest.mark.parametrize("model", ["mltk_tflite_bytes", "tiny_tflite_bytes"])
def test_arena_search_never_runs_tflm_where_it_crashes(model, request, tmp_path):
    """Issue 16, case 5: TFLM segfaults in arenas of a few hundred bytes (MLTK's model too), so
    the search starts at a floor no arena below which can work, whatever `upper` says."""
    import subprocess
    import sys

    from microspeech.tflite.runtime import arena_floor

    tflite_bytes = request.getfixturevalue(model)
    path = tmp_path / "model.tflite"
    path.write_bytes(tflite_bytes)
    floor = arena_floor(tflite_bytes)
    assert 1024 <= floor <= find_min_arena_size(tflite_bytes)
    script = (
        "import sys; from microspeech.tflite.profile import find_min_arena_size; "
        "print(find_min_arena_size(sys.argv[1], upper=64))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert int(done.stdout.split()[-1]) == find_min_arena_size(tflite_bytes)


def test_arena_report_works_from_a_plain_script_without_a_main_guard(mltk_tflite_bytes, tmp_path):
    """The README's profile snippet pasted into a script: the arena search's child must not run
    the script again (multiprocessing's spawn did, and the child died on the unguarded call)."""
    import subprocess
    import sys

    path = tmp_path / "model.tflite"
    path.write_bytes(mltk_tflite_bytes)
    script = tmp_path / "scripts" / "profile_it.py"
    script.parent.mkdir()
    script.write_text(
        "import sys\nfrom microspeech.tflite.profile import arena_report\nprint('script body runs')\n"
        "print(arena_report(sys.argv[1]).min_arena_bytes)\n"
    )
    # A module of the user's in the current folder shadowed the real one in the child only.
    (tmp_path / "signal.py").write_text("raise ImportError('the current folder is on the path')\n")
    done = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["script body runs", str(find_min_arena_size(mltk_tflite_bytes))]


def test_a_native_crash_during_the_arena_search_is_one_named_error():
    """Issue 16, case 5: should TFLM still crash, `profile` says so instead of dying silently."""
    import os

    from microspeech.tflite.profile import run_isolated

    assert run_isolated(int, "12", doing="parsing") == 12
    with pytest.raises(ValueError, match="invalid literal"):
        run_isolated(int, "x", doing="parsing")
    with pytest.raises(RuntimeError, match=r"^TFLM crashed \(signal SIGABRT\) while probing arenas$"):
        run_isolated(os.abort, doing="probing arenas")


def test_a_child_that_cannot_start_is_not_called_a_tflm_crash(tmp_path, monkeypatch):
    # A child failing in Python (here: the function's module is not importable there) read
    # "TFLM crashed (exit code 1)" after a traceback on the terminal.
    import importlib.util
    import sys

    from microspeech.tflite.profile import run_isolated

    source = tmp_path / "module_only_the_parent_has.py"
    source.write_text("def answer():\n    return 42\n")
    spec = importlib.util.spec_from_file_location("module_only_the_parent_has", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "module_only_the_parent_has", module)
    with pytest.raises(
        RuntimeError,
        match=r"^the child process probing arenas failed \(exit code 1\): ModuleNotFoundError: "
        r"No module named 'module_only_the_parent_has'$",
    ):
        run_isolated(module.answer, doing="probing arenas")
