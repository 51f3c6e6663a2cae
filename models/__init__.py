"""What is fitted: the annotator model (PyMC) and the reward models (PyTorch)."""
