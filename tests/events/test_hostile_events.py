"""Event recordings from strangers: corrupt fields, wrapped coordinates, giant sensors or time spans are one
EventError naming the file (one line and exit 2 from detect), before anything large is allocated."""
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeyolo.cli import main
from spikeyolo.events import EventError, read_events


def write_h5(path, fields, width=64, height=48):
    with h5py.File(path, "w") as handle:
        group = handle.create_group("events")
        for name, values in fields.items():
            group.create_dataset(name, data=values)
        if width is not None:
            group.attrs["width"], group.attrs["height"] = width, height
    return path


GOOD = {"x": np.array([3, 5]), "y": np.array([1, 2]), "t": np.array([10, 20]), "p": np.array([0, 1])}

CASES = {
    "string-timestamps": ({**GOOD, "t": np.array([b"10", b"20"])}, {}, "field t must be a 1-D array of numbers"),
    "nan-timestamps": ({**GOOD, "t": np.array([10.0, np.nan])}, {}, "field t holds NaN"),
    "nan-x": ({**GOOD, "x": np.array([3.0, np.nan])}, {}, "field x holds NaN"),
    "fractional-y": ({**GOOD, "y": np.array([1.5, 2.0])}, {}, "fractional"),
    "wrapping-x": ({**GOOD, "x": np.array([3, 70000])}, {"width": 100000, "height": 48}, "sensor width 100000"),
    "x-outside": ({**GOOD, "x": np.array([3, 64])}, {}, "outside the 64x48 sensor"),
    "negative-y": ({**GOOD, "y": np.array([-1, 2])}, {}, "outside the 64x48 sensor"),
    "giant-sensor": (GOOD, {"width": 100000, "height": 100000}, "sensor width 100000"),
    "unequal-lengths": ({**GOOD, "p": np.array([0, 1, 1])}, {}, "differ in length"),
    "string-size": (GOOD, {"width": "wide", "height": 48}, "must be integers"),
    "2d-field": ({**GOOD, "x": np.array([[3, 5]])}, {}, "1-D array"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_event_files(case, tmp_path, capsys):
    fields, size, expected = CASES[case]
    path = write_h5(tmp_path / "rec.h5", fields, **size)
    with pytest.raises(EventError, match=expected):
        read_events(path)
    assert main(["detect", str(path), "--project", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "out").exists()


def test_timestamps_spanning_years_are_refused_before_making_frames(tmp_path, capsys):
    path = write_h5(tmp_path / "rec.h5", {**GOOD, "t": np.array([0, 10**13])})
    assert main(["detect", str(path), "--project", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "windows" in err[0] and "limit 1000000" in err[0] and not (tmp_path / "out").exists()


ARRAYS = st.one_of(
    st.lists(st.integers(-(2**40), 2**40), max_size=6).map(np.array),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6).map(np.array),
    st.lists(st.text(alphabet="0123456789abc", max_size=3), max_size=3).map(lambda v: np.array(v, dtype="S")))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=ARRAYS, y=ARRAYS, t=ARRAYS, p=ARRAYS, size=st.one_of(st.none(), st.tuples(
    st.integers(-5, 10**6), st.integers(-5, 10**6))))
def test_event_reader_fuzzed(x, y, t, p, size, tmp_path_factory):
    """Random fields in an .npz: Events inside a bounded sensor, or EventError; never another exception."""
    path = tmp_path_factory.mktemp("fuzz") / "rec.npz"
    extra = {"size": np.array(size)} if size is not None else {}
    np.savez(path, x=x, y=y, t=t, p=p, **extra)
    try:
        events = read_events(path)
    except EventError:
        return
    assert 1 <= events.width <= 4096 and 1 <= events.height <= 4096
    if len(events):
        assert events.x.min() >= 0 and events.x.max() < events.width and events.y.max() < events.height
        assert np.all(np.diff(events.t) >= 0)
