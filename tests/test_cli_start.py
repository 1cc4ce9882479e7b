"""Starting ``trt-workbench`` costs no heavy import: each subcommand's module is imported when it is used, and a
subcommand whose module cannot be imported is still listed and says why when run (issue 16)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench import cli, cli_more

HEAVY = ("numpy", "onnx", "onnxruntime", "polygraphy", "workbench.quantize", "workbench.accuracy", "workbench.spec",
         "workbench.model")


def test_help_lists_every_subcommand_without_importing_numpy_onnx_or_the_subcommands():
    code = ("import sys, workbench.cli as c; c.build_parser().format_help(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"


def test_a_subcommand_gets_its_full_arguments_when_used(capsys):
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    assert "--per-layer" in capsys.readouterr().out


def test_a_subcommand_whose_module_is_missing_is_listed_and_says_why_when_run(monkeypatch, capsys):
    monkeypatch.setattr(cli_more, "SUBCOMMAND_MODULES",
                        (*cli_more.SUBCOMMAND_MODULES, ("frobnicate", "cli_frobnicate", "a subcommand not installed")))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "frobnicate" in capsys.readouterr().out
    assert cli.main(["frobnicate", "model.onnx", "--any"]) == 1
    err = capsys.readouterr().err
    assert "'trt-workbench frobnicate' is unavailable" in err and "cli_frobnicate" in err
    assert "Traceback" not in err
