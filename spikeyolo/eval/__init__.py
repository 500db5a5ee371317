"""Evaluation: mAP of the ANN and the SNN at every timestep, and the SNN cost report."""
