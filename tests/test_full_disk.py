"""A full disk (here: a file-size limit, which fails writes the same way, EFBIG instead of ENOSPC) ends every
writing command in one line, exit 2, with nothing left under a final name and no traceback."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT

WEIGHTS = ROOT / "weights" / "bccd-yolov8n-qcfs.safetensors"
YOLOV5 = ROOT.parent / "shared" / "weights" / "yolov5n-v6.1-coco.pt"  # a real .pt to import
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from spikeyolo.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="no shipped weights")
@pytest.mark.parametrize("command, limit, expected", [
    (["convert", str(WEIGHTS)], 20_000, "cannot write {out}/exp/bccd-yolov8n-qcfs-snn-qcfs.safetensors: File too large"),
    (["import", str(YOLOV5)], 20_000, "cannot write {out}/exp/yolov5n-v6.1-coco.safetensors: File too large"),
    (["detect", str(ROOT / "demo" / "bccd_pan.mp4"), "--timesteps", "1"], 100_000,
     "{out}/exp/bccd_pan.mp4 could not be written completely"),
])
def test_a_full_disk_is_one_line(command, limit, expected, tmp_path):
    if command[0] == "import" and not YOLOV5.is_file():
        pytest.skip("../shared/weights not present")
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), *command, "--project", str(out)],
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()
             and not line.startswith("detect ")]  # detect's progress bar
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and expected.format(out=out) in lines[0], lines
    assert not [p for p in out.rglob("*") if p.is_file()] if out.exists() else True
