"""``python -m ecgfast.evaluate --checkpoint CKPT``: a classifier on fold 10 (see ecgfast.eval.evaluate)."""
import sys

from ecgfast.eval.evaluate import evaluate, format_report, load_classifier_checkpoint, main

__all__ = ["evaluate", "format_report", "load_classifier_checkpoint", "main"]

if __name__ == "__main__":
    sys.exit(main())
