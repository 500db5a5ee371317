"""Event recordings: AEDAT4 and HDF5 written and read back exactly; corrupt files give one clear error."""
import numpy as np
import pytest

from spikeyolo.cli import main
from spikeyolo.events import EventError, Events, read_events, write_events


def _events(count=500, seed=0):
    rng = np.random.default_rng(seed)
    return Events(np.sort(rng.integers(0, 200_000, count)), rng.integers(0, 64, count), rng.integers(0, 48, count),
                  rng.choice([-1, 1], count), 64, 48)


@pytest.mark.parametrize("suffix", [".aedat4", ".h5", ".npz"])
def test_round_trip(suffix, tmp_path):
    events = _events()
    back = read_events(write_events(tmp_path / f"rec{suffix}", events))
    assert (back.width, back.height) == (64, 48)
    for name in "txyp":
        np.testing.assert_array_equal(getattr(back, name), getattr(events, name))
    assert not list(tmp_path.glob(".*tmp*"))


def test_hdf5_in_the_common_layout_with_01_polarity(tmp_path):
    import h5py

    with h5py.File(tmp_path / "dsec.h5", "w") as handle:  # 0/1 polarity, no size attributes
        group = handle.create_group("events")
        for name, values in (("x", [3, 5]), ("y", [1, 2]), ("t", [10, 20]), ("p", [0, 1])):
            group.create_dataset(name, data=np.array(values))
    events = read_events(tmp_path / "dsec.h5")
    assert events.p.tolist() == [-1, 1] and (events.width, events.height) == (6, 3)


@pytest.mark.parametrize("name,content,expected", [
    ("bad.aedat4", b"#!AER-DAT4.0\r\n" + b"garbage" * 50, "cannot read AEDAT4"),
    ("bad.h5", b"not hdf5 at all", "cannot read HDF5"),
    ("bad.npz", b"PK\x03\x04 broken zip", "cannot read NumPy"),
    ("bad.txt", b"1 2 3 1", "unsupported event file type"),
])
def test_corrupt_files_give_one_clear_error(name, content, expected, tmp_path):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(EventError, match=expected) as err:
        read_events(tmp_path / name)
    assert "\n" not in str(err.value)


def test_out_of_sensor_coordinates_are_refused(tmp_path):
    events = _events()
    events.x[3] = 500
    write_events(tmp_path / "off.npz", Events(events.t, events.x, events.y, events.p, 64, 48))
    with pytest.raises(EventError, match="outside the 64x48 sensor"):
        read_events(tmp_path / "off.npz")


def test_detect_on_a_corrupt_recording_is_one_line(tmp_path, capsys):
    (tmp_path / "rec.aedat4").write_bytes(b"#!AER-DAT4.0\r\n" + b"\x00" * 64)
    assert main(["detect", str(tmp_path / "rec.aedat4"), "--project", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spikeyolo detect: error: cannot read AEDAT4") and "\n" not in err
    assert not (tmp_path / "out").exists()
