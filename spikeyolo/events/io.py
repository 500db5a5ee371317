"""Event recordings: AEDAT4 through iniVation's dv-processing, HDF5 through h5py, NumPy .npy/.npz.

HDF5 layout (as DSEC and most event datasets): a group ``events`` (or the file root) holding 1-D
datasets ``x``, ``y``, ``t`` (µs) and ``p`` (0/1 or -1/+1), with ``width`` and ``height`` attributes.
NumPy files hold a structured array with fields x, y, t (or timestamp) and p (or polarity).
"""
from __future__ import annotations

from pathlib import Path

import zipfile

import numpy as np

from spikeyolo.events.stream import EventError, Events
from spikeyolo.atomic import atomic_path

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
        return Events.empty(width, height)
    events = np.concatenate(batches)
    return Events(events["timestamp"], events["x"], events["y"], events["polarity"], width, height)


def _read_hdf5(path: Path) -> Events:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle["events"] if "events" in handle else handle
            width = int(group.attrs.get("width", handle.attrs.get("width", 0)))
            height = int(group.attrs.get("height", handle.attrs.get("height", 0)))
            x, y, t, p = (_field(group, *names) for names in (("x",), ("y",), ("t", "timestamp"), ("p", "polarity")))
    except (OSError, KeyError) as err:
        raise EventError(f"cannot read HDF5 events {path} ({err}): expected datasets x, y, t, p under 'events' "
                         f"or at the root") from err
    return _with_size(Events(t, x, y, p, width, height))


def _read_numpy(path: Path) -> Events:
    try:
        data = np.load(path, allow_pickle=False)
        x, y = _field(data, "x"), _field(data, "y")
        t, p = _field(data, "t", "timestamp"), _field(data, "p", "polarity")
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise EventError(f"cannot read NumPy events {path} ({err}): expected a structured array with fields "
                         f"x, y, t, p") from err
    size = data["size"] if hasattr(data, "keys") and "size" in data.keys() else (0, 0)
    return _with_size(Events(t, x, y, p, int(size[0]), int(size[1])))


def _with_size(events: Events) -> Events:
    """Fill in a missing sensor size from the largest coordinates."""
    if events.width <= 0 or events.height <= 0:
        events.width = int(events.x.max()) + 1 if len(events) else 1
        events.height = int(events.y.max()) + 1 if len(events) else 1
    return events


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
