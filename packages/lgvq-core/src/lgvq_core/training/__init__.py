"""Training step, loop and checkpoints (pure PyTorch; works under any torch.distributed launcher)."""
