"""Model building blocks and architectures (plain PyTorch, no DGL)."""
