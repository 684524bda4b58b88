"""The floor everything stands on: errors, crash-safe files, the compiled extension, checkpoints, the runtime (device, precision, seed)."""
