"""The spiking engine: IF/IBT neurons (torch and Triton backends), stateful layers, the runner."""
from spikeyolo.engine.layers import Accumulate, CumulativeMaxPool, IFNeuron, Stateful
from spikeyolo.engine.neuron import default_backend, if_multistep, if_step
from spikeyolo.engine.runner import SpikingDetector

__all__ = ["Accumulate", "CumulativeMaxPool", "IFNeuron", "Stateful", "SpikingDetector", "default_backend",
           "if_multistep", "if_step"]
