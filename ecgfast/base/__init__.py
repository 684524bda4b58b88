"""The floor everything stands on: errors, crash-safe files, the compiled extension, checkpoints and the
runtime (device, precision, seed). Imports nothing else of ecgfast."""
