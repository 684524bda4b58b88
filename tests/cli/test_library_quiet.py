"""The library never parses argv or prints: argparse and print live in ecgfast/cli only."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ecgfast"


def _library_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "cli" in path.parents:
            continue
        yield path, ast.parse(path.read_text(), filename=str(path))


def test_no_library_module_imports_argparse():
    offenders = []
    for path, tree in _library_modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] == "argparse" for n in names):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == []


def test_no_library_module_prints():
    offenders = []
    for path, tree in _library_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
            if (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")
                    and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} (sys.{node.attr})")
    assert offenders == []


def test_building_a_cache_prints_nothing_to_stdout(capsys, tmp_path):
    """A library call is silent on stdout; what it says (a skipped record) is a log line on stderr."""
    from ecgfast.data import build_cache, write_synthetic_ptbxl

    root = write_synthetic_ptbxl(tmp_path / "PTB-XL", n_records=12, seed=3, sampling_rates=(100,), progress=False,
                                 workers=1)
    capsys.readouterr()
    missing = next((root / "records100").rglob("*.dat"))
    missing.unlink()
    build_cache(root, tmp_path / "c.h5", 100, skip_missing=True, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"ecgfast cache: skipping 1 missing record(s) of 12 (first: "
                                f"{missing.relative_to(root).with_suffix('')})"]


def test_pretraining_prints_nothing_to_stdout(capsys, cli_tiny_cache, tmp_path):
    from ecgfast.train.config import DataConfig, PretrainConfig, RunConfig
    from ecgfast.train.pretrain import pretrain

    root, cache = cli_tiny_cache
    cfg = PretrainConfig(method="simclr", data=DataConfig(data_root=root, cache=cache),
                         run=RunConfig(device="cpu", precision="fp32", progress=True), out=tmp_path / "enc.pt",
                         epochs=1, batch_size=32, signal_length=128)
    capsys.readouterr()
    assert pretrain(cfg) == tmp_path / "enc.pt"
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # progress on, but stderr is no terminal: no bar either
