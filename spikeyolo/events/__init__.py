"""Event-camera input: recordings (AEDAT4, HDF5, NPY), a DVS simulator, and event frames for the detector."""
from spikeyolo.events.stream import EventError, Events
from spikeyolo.events.io import read_events, write_events
from spikeyolo.events.simulate import EventSimulator
from spikeyolo.events.represent import event_frame, event_histogram, time_windows, voxel_grid

__all__ = ["EventError", "Events", "read_events", "write_events", "EventSimulator", "event_frame",
           "event_histogram", "time_windows", "voxel_grid"]
