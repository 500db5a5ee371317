"""Device names from the command line → torch devices."""
import pytest
import torch

from spikeyolo.cli import main
from spikeyolo.device import check_device, torch_device, ultralytics_device


def test_bare_index_is_a_cuda_device_and_the_rest_reads_as_torch_does():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device("0") == torch_device(0) == torch.device("cuda", 0)
    assert torch_device("cuda:1") == torch.device("cuda", 1)
    device = torch.device("cpu")
    assert torch_device(device) is device


def test_auto_is_the_first_gpu_or_the_cpu():
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert torch_device("auto") == torch_device() == check_device("auto") == expected
    assert ultralytics_device("auto") == ("0" if torch.cuda.is_available() else "cpu")
    assert ultralytics_device("cpu") == "cpu" and ultralytics_device("cuda:1") == "1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_gpu_this_machine_lacks_is_one_clear_line(capsys):
    with pytest.raises(ValueError, match="this machine has 0 CUDA device"):
        check_device("0")
    with pytest.raises(ValueError, match="not a device name"):
        check_device("gpu7")
    assert main(["val", "--weights", "w.safetensors", "--data", "d", "--device", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "spikeyolo val: error: device '0': this machine has 0 CUDA device(s)" in err[0], err


def test_several_devices_are_for_training_only():
    import pytest

    from spikeyolo.device import check_device, ultralytics_device

    with pytest.raises(ValueError, match="only train takes several"):
        check_device("0,1")
    with pytest.raises(ValueError, match="distinct CUDA indices"):
        check_device("0,0", many=True)
    with pytest.raises(ValueError, match="distinct CUDA indices"):
        check_device("cpu,0", many=True)
    assert ultralytics_device("0, 1") == "0,1" and ultralytics_device("cpu") == "cpu"
