"""spikeyolo benchmark: every engine measured in one run, ratios and speed-ups written as JSON."""
import json

import pytest

from spikeyolo.cli import main
from tests.detect.test_detect_cli import weights  # noqa: F401  (fixture)


def test_benchmark_json_has_every_engine_and_ratio(weights, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "exp" / "benchmark.json"
    assert main(["benchmark", "--weights", str(weights), "--imgsz", "64", "--timesteps", "1,3", "--batch", "2",
                 "--repeats", "1", "--project", str(tmp_path)]) == 0
    report = json.loads(out.read_text())
    engines = {(c["engine"], c["timesteps"]) for c in report["configs"]}
    spiking = ("snn", "snn_binary", "snn_folded", "snn_nchw", "naive", "spikingjelly", "spikingjelly_ms")
    assert engines == {("ann", None)} | {(e, t) for e in spiking for t in (1, 3)}
    for config in report["configs"]:
        assert config["images_per_s"] > 0 and config["seconds"] > 0
        timed = config["engine"] in ("snn_binary", "spikingjelly", "spikingjelly_ms")  # neuron layers also timed alone
        assert (config["neuron_seconds"] is not None) == timed
        if timed:
            assert config["neuron_seconds"] > 0  # the neuron layers' hooks fired (no timing bound: not a timed test)
        assert (config["per_timestep_ratio"] is None) == (config["engine"] == "ann")
        if config["engine"] != "ann":
            assert config["per_timestep_ratio"] > 0
    assert {(s["vs"], s["timesteps"]) for s in report["speedups"]} == {
        (e, t) for e in ("naive", "snn_folded", "snn_nchw", "spikingjelly", "spikingjelly_ms") for t in (1, 3)}
    for row in report["speedups"]:
        assert ("bound" in row) == (row["vs"] == "spikingjelly")
        assert ("neuron_speedup" in row) == row["vs"].startswith("spikingjelly")
        if "bound" in row:  # SpikingJelly's time over ours without our neurons
            assert row["neuron_speedup"] > 0 and row["bound"] > 0
    assert all(row["ours"] == "snn_binary" for row in report["speedups"])  # SpikingJelly has binary neurons only
    assert "snn_binary vs spikingjelly" in capsys.readouterr().out


def test_benchmark_ours_is_the_network_detect_runs_and_compiled_beside_it(weights, tmp_path):  # noqa: F811
    """snn is detect's network (bursts of L for QCFS weights), snn_binary binary; --compile adds it compiled."""
    from spikeyolo.bench.speed import build_engines
    from spikeyolo.detect.predictor import Detector

    import torch

    built = build_engines(weights, torch.device("cpu"), with_spikingjelly=False, compiled=True)
    detect = Detector(weights, device="cpu").model
    assert {n.max_spikes for _, n in built["snn"].neurons()} == {n.max_spikes for _, n in detect.neurons()}
    assert {n.max_spikes for _, n in built["snn_binary"].neurons()} == {1}
    assert built["snn_compiled"].compiled and not built["snn"].compiled


def test_benchmark_refuses_unknown_engines(weights, capsys):  # noqa: F811
    assert main(["benchmark", "--weights", str(weights), "--engines", "ann,fast"]) == 2
    assert "--engines ann,fast: choose from" in capsys.readouterr().err


def test_summary_speedups_from_known_timings():
    """Ours 1.0 s (0.2 s in neurons), SpikingJelly 2.0 s (0.8 s): 2×, neurons 4×, bound 2.0 / 0.8 = 2.5×."""
    from spikeyolo.bench.speed import BenchResult, summary

    ours = BenchResult("snn_binary", 320, 1, 4, 1.0, 1.0, 0.5, 0.0, 0.2)
    jelly = BenchResult("spikingjelly", 320, 1, 4, 2.0, 0.5, 1.0, 0.0, 0.8)
    naive = BenchResult("naive", 320, 1, 4, 1.5, 0.67, 0.75, 0.0)
    rows = {row["vs"]: row for row in summary([ours, jelly, naive])["speedups"]}
    assert rows["spikingjelly"]["speedup"] == pytest.approx(2.0)
    assert rows["spikingjelly"]["neuron_speedup"] == pytest.approx(4.0)
    assert rows["spikingjelly"]["bound"] == pytest.approx(2.5)
    assert rows["naive"]["speedup"] == pytest.approx(1.5) and "bound" not in rows["naive"]


def test_doubtful_timings_are_named():
    """Rounds that spread widely, or an engine that ran more steps in less time, are warned about; clean ones not."""
    from spikeyolo.bench.speed import BenchResult, timing_warnings

    def row(engine, steps, seconds, spread=0.05):
        return BenchResult(engine, 320, 1, steps, seconds, 1 / seconds, None, 0.0, spread=spread)

    assert timing_warnings([row("ann", None, 0.1), row("snn", 1, 0.1), row("snn", 4, 0.3)]) == []
    noisy = timing_warnings([row("ann", None, 0.1), row("snn", 1, 0.1, spread=0.4), row("snn", 4, 0.3)])
    assert len(noisy) == 1 and "1 of 3 timings spread by more than 15%" in noisy[0] and "up to 40%" in noisy[0]
    backwards = timing_warnings([row("snn", 1, 0.3), row("snn", 4, 0.2), row("naive", 1, 0.1), row("naive", 4, 0.4)])
    assert backwards == ["snn (imgsz 320, batch 1) ran T=4 faster than T=1: noise, not a result; rerun with more "
                         "--repeats"]


def test_benchmark_says_which_neurons_run_and_what_peak_means(weights, tmp_path, capsys):  # noqa: F811
    assert main(["benchmark", "--weights", str(weights), "--imgsz", "64", "--timesteps", "2", "--batch", "1",
                 "--repeats", "2", "--engines", "snn,snn_binary", "--project", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "snn: detect's network: IF, bursts of up to 4 spikes" in out and "snn_binary: IF, binary spikes" in out
    assert "peak: growth of the process's resident memory" in out and "round 2/2" in out
    assert " 0.0 MB" not in out
    assert "warnings" in json.loads((tmp_path / "exp" / "benchmark.json").read_text())
