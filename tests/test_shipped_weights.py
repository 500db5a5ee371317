"""The shipped weights: readable metadata, and (slow) their recorded mAP reproduced on BCCD test."""
import pytest

from spikeyolo.checkpoint import read_metadata
from spikeyolo.detect.predictor import DEFAULT_WEIGHTS
from tests.conftest import SHARED

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights not present")


def test_metadata_says_what_the_weights_are():
    meta = read_metadata(DEFAULT_WEIGHTS)
    assert meta["names"] == ["Platelets", "RBC", "WBC"] and meta["imgsz"] == 320
    assert meta["quantization"]["levels"] == 4 and len(meta["quantization"]["layers"]) == 57
    measured = meta["measured"]
    assert measured["ann"]["map50"] > 0.6 and set(measured["snn"]) == {"burst1", "burst4"}


@pytest.mark.slow
def test_recorded_map_is_reproduced():
    from spikeyolo.eval.val import validate

    """Same settings as benchmarks/convert_bccd.sh (the simulated horizon sets the conv batch shape, and a
    last-bit difference there can flip a spike, so the check uses the recorded timesteps)."""
    measured = read_metadata(DEFAULT_WEIGHTS)["measured"]
    recorded = measured["snn"]["burst4"]
    report = validate(DEFAULT_WEIGHTS, SHARED / "bccd", [int(t) for t in recorded], imgsz=320, burst=4, cost=False)
    assert report["ann"]["map50"] == pytest.approx(measured["ann"]["map50"], abs=1e-4)
    for t, expected in recorded.items():
        assert report["snn"][t]["map50"] == pytest.approx(expected["map50"], abs=1e-4)
