"""`python -m ecgfast.train_ssl_byol`: self-supervised pretraining with BYOL (see ecgfast.train.pretrain)."""
import sys

from ecgfast.train.pretrain import main_for


def main(argv=None) -> int:
    return main_for("byol", argv)


if __name__ == "__main__":
    sys.exit(main())
