"""spikeyolo benchmark: every engine measured in one run, ratios and speed-ups written as JSON."""
import json

from spikeyolo.cli import main
from tests.detect.test_detect_cli import weights  # noqa: F401  (fixture)


def test_benchmark_json_has_every_engine_and_ratio(weights, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--weights", str(weights), "--imgsz", "64", "--timesteps", "1,3", "--batch", "2",
                 "--repeats", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    engines = {(c["engine"], c["timesteps"]) for c in report["configs"]}
    assert engines == {("ann", None)} | {(e, t) for e in ("snn", "snn_folded", "snn_nchw", "naive", "spikingjelly")
                                          for t in (1, 3)}
    for config in report["configs"]:
        assert config["images_per_s"] > 0 and config["seconds"] > 0
        timed = config["engine"] in ("snn", "spikingjelly")  # their neuron layers are timed alone too
        assert (config["neuron_seconds"] is not None) == timed
        if timed:
            assert 0 < config["neuron_seconds"] < config["seconds"] * 1.5  # a share of the run (hooks add a little)
        assert (config["per_timestep_ratio"] is None) == (config["engine"] == "ann")
        if config["engine"] != "ann":
            assert config["per_timestep_ratio"] > 0
    assert {(s["vs"], s["timesteps"]) for s in report["speedups"]} == {
        (e, t) for e in ("naive", "snn_folded", "snn_nchw", "spikingjelly") for t in (1, 3)}
    for row in report["speedups"]:
        assert ("bound" in row) == (row["vs"] == "spikingjelly")
        if "bound" in row:  # SpikingJelly's time over ours without our neurons: above the measured speed-up
            assert row["neuron_speedup"] > 0 and row["bound"] > row["speedup"]
    assert "our SNN vs spikingjelly" in capsys.readouterr().out


def test_benchmark_refuses_unknown_engines(weights, capsys):  # noqa: F811
    assert main(["benchmark", "--weights", str(weights), "--engines", "ann,fast"]) == 2
    assert "--engines ann,fast: choose from" in capsys.readouterr().err
