"""One name per command: ``ecgfast X`` and its ``python -m`` alias run the same program, and each
``--help`` shows the name it was called by; the alias shims are driven by one table."""
from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecgfast.cli import ALIASES, COMMANDS
from ecgfast.cli import main as ecgfast_main

PACKAGE = Path(__file__).resolve().parents[2] / "ecgfast"


def _usage_line(capsys, run) -> str:
    with pytest.raises(SystemExit) as exc:
        run()
    assert exc.value.code == 0
    out = capsys.readouterr().out
    return out.splitlines()[0]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_names_the_ecgfast_command(capsys, name):
    line = _usage_line(capsys, lambda: ecgfast_main([name, "--help"]))
    assert line.startswith(f"usage: ecgfast {name} "), line


@pytest.mark.parametrize("module", sorted(ALIASES))
def test_help_names_the_python_m_alias(capsys, module):
    line = _usage_line(capsys, lambda: importlib.import_module(module).main(["--help"]))
    assert line.startswith(f"usage: python -m {module} "), line


def test_every_alias_runs_its_commands_module():
    for module, command in ALIASES.items():
        assert command in COMMANDS, (module, command)
        assert COMMANDS[command][0].startswith("ecgfast.cli."), command


def test_alias_shims_are_the_table_lookup_only():
    """The shim files are the table's keys, and each is a lookup of the table (no flags, no logic)."""
    shims = {f"ecgfast.{p.stem}" for p in PACKAGE.glob("*.py")
             if p.stem.startswith("train_") or p.stem in ("evaluate", "experiment")}
    assert shims == set(ALIASES)
    for module in ALIASES:
        path = PACKAGE / f"{module.split('.')[-1]}.py"
        tree = ast.parse(path.read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert [(i.module, [a.name for a in i.names]) for i in imports] == [("ecgfast.cli", ["alias_main"])], path
        assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body), path
        assert len(path.read_text().splitlines()) <= 6, path


def test_python_m_alias_in_a_process_shows_its_name():
    """``python -m ALIAS`` (the module run as __main__) finds its table entry too."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    r = subprocess.run([sys.executable, "-m", "ecgfast.train_ssl_byol", "--help"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python -m ecgfast.train_ssl_byol "), r.stdout[:200]


def test_a_usage_error_names_the_caller(capsys):
    with pytest.raises(SystemExit) as exc:
        importlib.import_module("ecgfast.train_ssl_simclr").main(["--lr", "-1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "python -m ecgfast.train_ssl_simclr: error: argument --lr: must be > 0, got -1" in err
    with pytest.raises(SystemExit):
        ecgfast_main(["pretrain-simclr", "--lr", "-1"])
    assert "ecgfast pretrain-simclr: error: argument --lr: must be > 0, got -1" in capsys.readouterr().err
