"""Dataset readers (VOC, COCO, YOLO yaml) and their preparation for training."""
from spikeyolo.data.prepare import prepare_dataset
from spikeyolo.data.records import DatasetError, ImageRecord

__all__ = ["prepare_dataset", "DatasetError", "ImageRecord"]
