"""Trained models at work: reading inputs, the batched inference loop, embed, predict and export."""
