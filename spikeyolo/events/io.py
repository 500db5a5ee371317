"""Event recordings: AEDAT4 through iniVation's dv-processing, HDF5 through h5py, NumPy .npy/.npz.

HDF5 layout (as DSEC and most event datasets): a group ``events`` (or the file root) holding 1-D
datasets ``x``, ``y``, ``t`` (µs) and ``p`` (0/1 or -1/+1), with ``width`` and ``height`` attributes.
NumPy files hold a structured array with fields x, y, t (or timestamp) and p (or polarity).
"""
from __future__ import annotations

from pathlib import Path

import zipfile

import numpy as np

from spikeyolo.atomic import atomic_path
from spikeyolo.events.stream import EventError, Events
from spikeyolo.limits import MAX_SENSOR

EVENT_SUFFIXES = {".aedat4", ".h5", ".hdf5", ".npy", ".npz"}


def _field(container, *names):
    """The first of ``names`` in a structured array, an .npz archive or an HDF5 group."""
    fields = container.keys() if hasattr(container, "keys") else (getattr(container.dtype, "names", None) or ())
    for name in names:
        if name in fields:
            return np.asarray(container[name])
    raise KeyError(f"no field {'/'.join(names)}")


def _read_aedat4(path: Path) -> Events:
    import dv_processing as dv

    try:
        recording = dv.io.MonoCameraRecording(str(path))
        if not recording.isEventStreamAvailable():
            raise EventError(f"{path} holds no event stream: record events, not only frames")
        width, height = recording.getEventResolution()
        batches = []
        while (batch := recording.getNextEventBatch()) is not None:
            batches.append(batch.numpy())
    except RuntimeError as err:
        reason = str(err).splitlines()[1] if len(str(err).splitlines()) > 1 else str(err)
        raise EventError(f"cannot read AEDAT4 file {path} ({reason.strip()[:120]}): the file is corrupt or "
                         f"not AEDAT4") from err
    if not batches:
        return _checked(path, *(np.zeros(0, np.int64),) * 4, width, height)
    events = np.concatenate(batches)
    return _checked(path, events["timestamp"], events["x"], events["y"], events["polarity"], width, height)


def _read_hdf5(path: Path) -> Events:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle["events"] if "events" in handle else handle
            width = group.attrs.get("width", handle.attrs.get("width", 0))
            height = group.attrs.get("height", handle.attrs.get("height", 0))
            x, y, t, p = (_field(group, *names) for names in (("x",), ("y",), ("t", "timestamp"), ("p", "polarity")))
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise EventError(f"cannot read HDF5 events {path} ({err}): expected datasets x, y, t, p under 'events' "
                         f"or at the root") from None
    return _checked(path, t, x, y, p, width, height)


def _read_numpy(path: Path) -> Events:
    try:
        data = np.load(path, allow_pickle=False)
        x, y = _field(data, "x"), _field(data, "y")
        t, p = _field(data, "t", "timestamp"), _field(data, "p", "polarity")
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise EventError(f"cannot read NumPy events {path} ({err}): expected a structured array with fields "
                         f"x, y, t, p") from err
    size = np.asarray(data["size"]).ravel() if hasattr(data, "keys") and "size" in data.keys() else np.zeros(2)
    if size.shape != (2,) or size.dtype.kind not in "iu":
        raise EventError(f"{path}: 'size' must be two integers (width, height)")
    return _checked(path, t, x, y, p, size[0], size[1])


def _checked(path: Path, t, x, y, p, width, height) -> Events:
    """Events from raw fields, refused in one EventError unless every field is numeric, finite, whole (t, x, y),
    and inside the sensor, whose size (given, or the largest coordinates + 1) is at most MAX_SENSOR."""
    fields = {"t": np.asarray(t), "x": np.asarray(x), "y": np.asarray(y), "p": np.asarray(p)}
    for name, values in fields.items():
        if values.ndim != 1 or values.dtype.kind not in "iufb":
            raise EventError(f"{path}: event field {name} must be a 1-D array of numbers, got {values.dtype} "
                             f"{values.shape}: the file is not an event recording spikeyolo reads")
        if values.dtype.kind == "f" and len(values) and not (np.isfinite(values).all()
                                                             and (name == "p" or (values == np.round(values)).all())):
            raise EventError(f"{path}: event field {name} holds NaN, infinite or fractional values: the file is "
                             "corrupt")
    if not len(fields["t"]) == len(fields["x"]) == len(fields["y"]) == len(fields["p"]):
        raise EventError(f"{path}: event fields t, x, y, p differ in length: the file is corrupt")
    try:
        width, height = int(width), int(height)
    except (TypeError, ValueError):
        raise EventError(f"{path}: sensor width and height must be integers") from None
    count = len(fields["t"])
    if width <= 0 or height <= 0:  # no size in the file: the largest coordinates
        width = int(fields["x"].max()) + 1 if count else 1
        height = int(fields["y"].max()) + 1 if count else 1
    for name, size in (("width", width), ("height", height)):
        if not 1 <= size <= MAX_SENSOR:
            raise EventError(f"{path}: sensor {name} {size} is outside 1..{MAX_SENSOR}: the file is corrupt or not "
                             "an event recording")
    for name, size in (("x", width), ("y", height)):
        if count and (fields[name].min() < 0 or fields[name].max() >= size):
            raise EventError(f"{path}: event {name} coordinates fall outside the {width}x{height} sensor; the file "
                             f"is corrupt or its resolution is wrong")
    return Events(fields["t"], fields["x"], fields["y"], fields["p"], width, height)


def read_events(path: str | Path) -> Events:
    """Read an event recording (.aedat4, .h5/.hdf5, .npy/.npz) into time-sorted Events."""
    path = Path(path)
    if not path.is_file():
        raise EventError(f"event file {path} not found")
    suffix = path.suffix.lower()
    readers = {".aedat4": _read_aedat4, ".h5": _read_hdf5, ".hdf5": _read_hdf5, ".npy": _read_numpy,
               ".npz": _read_numpy}
    if suffix not in readers:
        raise EventError(f"{path}: unsupported event file type {suffix!r}; use {', '.join(sorted(EVENT_SUFFIXES))}")
    return readers[suffix](path).check(str(path))


def write_events(path: str | Path, events: Events) -> Path:
    """Write events as .aedat4, .h5/.hdf5 or .npz (chosen by suffix), through a temporary file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".aedat4", ".h5", ".hdf5", ".npz"}:
        raise EventError(f"{path}: cannot write events as {suffix!r}; use .aedat4, .h5 or .npz")
    with atomic_path(path) as tmp:
        if suffix == ".aedat4":
            _write_aedat4(tmp, events)
        elif suffix in {".h5", ".hdf5"}:
            _write_hdf5(tmp, events)
        else:
            np.savez_compressed(tmp, x=events.x, y=events.y, t=events.t, p=events.p,
                                size=np.array([events.width, events.height]))
    return path


def _write_aedat4(path: Path, events: Events) -> None:
    import dv_processing as dv

    store = dv.EventStore()
    for t, x, y, p in zip(events.t.tolist(), events.x.tolist(), events.y.tolist(), (events.p > 0).tolist()):
        store.push_back(t, x, y, p)
    config = dv.io.MonoCameraWriter.EventOnlyConfig("spikeyolo", (events.width, events.height))
    writer = dv.io.MonoCameraWriter(str(path), config)
    writer.writeEvents(store)
    del writer  # closes the file


def _write_hdf5(path: Path, events: Events) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        group = handle.create_group("events")
        group.attrs.update(width=events.width, height=events.height)
        for name in "xytp":
            group.create_dataset(name, data=getattr(events, name), compression="gzip")
