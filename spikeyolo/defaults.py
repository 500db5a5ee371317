"""Defaults shared by the command line and the Python API (imported without torch, so `spikeyolo --help` is fast)."""

QCFS_THRESHOLD = 3.0  # initial λ of every QCFS layer (train, the CLI and the Python API alike)
TIMESTEPS = 4  # T of detect, webcam and the Python API
VAL_TIMESTEPS = (1, 2, 4, 8)  # the T val reports unless told (a first look; longer runs: --timesteps 1,…,64)
CONF = 0.25  # confidence threshold of detect, webcam and the Python API
IOU = 0.7  # NMS IoU threshold
MAX_DET = 300  # detections an image at most
