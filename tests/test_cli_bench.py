from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flashsale.cli import bench
from flashsale.cli.main import cli


def test_bench_says_plainly_when_the_harness_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "HARNESS", tmp_path / "bench" / "__main__.py")

    result = CliRunner().invoke(cli, ["bench"])

    assert result.exit_code == 2
    assert "the benchmark harness is not installed" in result.stderr
    assert "no benchmark was run" in result.stderr


def test_bench_runs_the_harness_with_the_arguments_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = tmp_path / "bench" / "__main__.py"
    harness.parent.mkdir()
    harness.write_text(
        "import json, os, sys\n"
        "json.dump({'args': sys.argv[1:], 'cwd': os.getcwd()}, open('called.json', 'w'))\n"
        "sys.exit(3)\n"
    )
    monkeypatch.setattr(bench, "PROJECT", tmp_path)
    monkeypatch.setattr(bench, "HARNESS", harness)

    result = CliRunner().invoke(cli, ["bench", "--scenario", "holds", "--duration", "5"])

    assert result.exit_code == 3
    called = json.loads((tmp_path / "called.json").read_text())
    assert called == {"args": ["--scenario", "holds", "--duration", "5"], "cwd": str(tmp_path)}
