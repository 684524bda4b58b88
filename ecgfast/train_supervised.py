"""`python -m ecgfast.train_supervised`: see ecgfast.train.classifier."""
import sys

from ecgfast.train.classifier import cli


def main(argv=None) -> int:
    return cli(argv, "supervised")


if __name__ == "__main__":
    sys.exit(main())
