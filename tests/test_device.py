"""Device names from the command line → torch devices."""
import torch

from spikeyolo.device import torch_device


def test_bare_index_is_a_cuda_device_and_the_rest_reads_as_torch_does():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device("0") == torch_device(0) == torch.device("cuda", 0)
    assert torch_device("cuda:1") == torch.device("cuda", 1)
    device = torch.device("cpu")
    assert torch_device(device) is device
