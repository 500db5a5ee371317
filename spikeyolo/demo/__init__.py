"""The live demo: camera (or video, or simulated events) in, detections and spike activity on screen."""
from spikeyolo.demo.live import LiveDemo, LiveSummary

__all__ = ["LiveDemo", "LiveSummary"]
