"""`python -m ecgfast.train_ssl_simclr`: self-supervised pretraining with SIMCLR (see ecgfast.train.pretrain)."""
import sys

from ecgfast.train.pretrain import main_for


def main(argv=None) -> int:
    return main_for("simclr", argv)


if __name__ == "__main__":
    sys.exit(main())
