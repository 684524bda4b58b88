"""``ecgfast experiment``: every arm x seed x label fraction (see ecgfast.study.experiment)."""
import sys

from ecgfast.study.experiment import ExperimentConfig, main, run

__all__ = ["ExperimentConfig", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
