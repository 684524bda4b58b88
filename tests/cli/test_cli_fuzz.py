"""Property-based tests of the command-line parsers and configs: any argv parses, or is a usage
error (exit 2) with a message, or a ConfigError; never another exception."""
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ecgfast.base.errors import ConfigError  # noqa: E402

FLAGS = ["--epochs", "--batch-size", "--lr", "--signal-length", "--temperature", "--tau", "--projection-dim",
         "--checkpoint-every", "--log-every", "--workers", "--sampling-rate", "--precision", "--compile",
         "--device", "--config", "--augment", "--label-fraction", "--loss", "--sampling", "--seed", "--bootstrap",
         "--encoder"]
VALUES = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                   st.sampled_from(["", "abc", "1e-3", "0", "-1", "nan", "inf", "auto", "cpu", "cuda:9", "bf16",
                                    "full", "no-mixup", "3.5", "1.0", "0.5", "xresnet1d50", "ecg1dcnn"]),
                   st.text(max_size=8))
ARGV = st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=6).map(
    lambda pairs: [x for pair in pairs for x in pair])


def _parsers():
    import argparse

    from ecgfast.cli import experiment
    from ecgfast.cli.flags import add_classifier_flags, add_pretrain_flags, classifier_from_args, pretrain_from_args

    def pretrain(method):
        p = argparse.ArgumentParser()
        add_pretrain_flags(p, method)
        return p, lambda a: pretrain_from_args(a, method)

    def classifier(mode):
        p = argparse.ArgumentParser()
        add_classifier_flags(p, mode)
        return p, lambda a: classifier_from_args(a, mode)

    return {"simclr": pretrain("simclr"), "byol": pretrain("byol"), "supervised": classifier("supervised"),
            "experiment": (experiment.build_parser(), experiment.from_args)}


@pytest.mark.parametrize("name", ["simclr", "byol", "supervised", "experiment"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=ARGV)
def test_any_argv_parses_or_fails_cleanly(name, argv, capsys):
    parser, to_config = _parsers()[name]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2 and "error:" in capsys.readouterr().err
        return
    cfg = to_config(args)
    try:
        cfg.validate()
    except ConfigError as exc:
        assert str(exc).startswith("--") or "must be" in str(exc)
