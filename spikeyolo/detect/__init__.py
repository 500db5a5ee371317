"""Detection on images, folders, videos, cameras and streams with the ANN or the SNN."""
from spikeyolo.detect.predictor import Detector
from spikeyolo.detect.run import DetectSummary, detect
from spikeyolo.detect.sources import SourceError, open_source

__all__ = ["Detector", "DetectSummary", "detect", "SourceError", "open_source"]
