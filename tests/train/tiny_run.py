"""The command line of a tiny pretraining run, shared by the training tests."""

TINY = ["--epochs", "1", "--batch-size", "32", "--signal-length", "128", "--no-progress", "--precision", "fp32"]


def tiny_args(cache, out, *extra) -> list[str]:
    """A one-epoch fp32 pretraining command line on ``cache`` writing ``out``."""
    return ["--cache", str(cache), "--out", str(out), *TINY, *extra]
