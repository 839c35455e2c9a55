"""Every test model is tiny: one thread beats two on a 2-core machine (threads only contend)."""

import torch

torch.set_num_threads(1)
