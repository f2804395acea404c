from __future__ import annotations

import sys
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
    harness.write_text("import sys\nprint('harness', sys.argv[1:], flush=True)\nsys.exit(3)\n")
    monkeypatch.setattr(bench, "PROJECT", tmp_path)
    monkeypatch.setattr(bench, "HARNESS", harness)
    calls: list[list[str]] = []
    real_call = bench.subprocess.call

    def call(args: list[str], **kwargs: object) -> int:
        calls.append(args)
        return real_call(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bench.subprocess, "call", call)

    result = CliRunner().invoke(cli, ["bench", "--scenario", "holds", "--duration", "5"])

    assert result.exit_code == 3
    assert calls == [[sys.executable, "-m", "bench", "--scenario", "holds", "--duration", "5"]]
