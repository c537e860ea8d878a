"""Interoperability with the official PyTorch MAMP and STARS code: checkpoints, parity harness."""
