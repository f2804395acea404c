"""docs/guarantees.md: its figures come from the results the fault tests write, and it names every fault test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults import guarantees


def result(name: str, **figures: object) -> dict[str, object]:
    return {
        "name": name,
        "guarantee": f"{name} keeps its promise",
        "test": f"tests/faults/test_{name}.py::test_it",
        "ran_at": "2026-11-28T01:02:03+00:00",
        "passed": True,
        **figures,
    }


def test_the_table_has_a_row_per_run_with_its_figures(tmp_path: Path) -> None:
    (tmp_path / "api_killed.json").write_text(
        json.dumps(result("api_killed", clients=200, duration_s=12.5, requests=4000, faults_injected=2, lost=0))
    )
    (tmp_path / "zz_new.json").write_text(json.dumps({**result("zz_new"), "passed": False}))
    document = f"intro\n{guarantees.START}\nold table\n{guarantees.END}\noutro\n"

    rendered = guarantees.render(document, guarantees.load(tmp_path))

    assert rendered.startswith("intro\n")
    assert rendered.endswith("\noutro\n")
    assert "old table" not in rendered
    rows = [line for line in rendered.splitlines() if line.startswith("| `")]
    assert rows[0].split(" | ")[2:7] == ["200", "12.5 s", "4000", "2", "-"]
    assert rows[0].split(" | ")[7] == "0"
    assert "**FAIL**" in rows[1]


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        guarantees.render("no markers here", [])


def test_the_document_names_every_fault_test_and_every_result() -> None:
    text = guarantees.DOCUMENT.read_text()
    for path in sorted(Path(guarantees.__file__).parent.glob("test_*.py")):
        if path.name != Path(__file__).name:
            assert f"tests/faults/{path.name}" in text, f"docs/guarantees.md does not mention {path.name}"
    for path in sorted(guarantees.RESULTS.glob("*.json")):
        assert path.stem in guarantees.ORDER, f"{path.name} has no place in the document's order"
        assert f"`{path.stem}`" in text, f"docs/guarantees.md has no figures for {path.stem}"


def test_a_test_run_writes_its_figures_outside_the_tracked_results() -> None:
    from tests.faults import harness

    assert guarantees.RESULTS.resolve() not in (harness.RESULTS.resolve(), *harness.RESULTS.resolve().parents)


def test_recording_copies_the_last_runs_over_the_recorded_figures(tmp_path: Path) -> None:
    latest, recorded = tmp_path / "latest", tmp_path / "recorded"
    latest.mkdir()
    recorded.mkdir()
    (recorded / "api_killed.json").write_text(json.dumps(result("api_killed", lost=0, requests=1)))
    (recorded / "soak.json").write_text(json.dumps(result("soak", requests=7)))
    (latest / "api_killed.json").write_text(json.dumps(result("api_killed", lost=0, requests=2)))

    assert guarantees.record(latest, recorded) == 1
    assert json.loads((recorded / "api_killed.json").read_text())["requests"] == 2
    assert json.loads((recorded / "soak.json").read_text())["requests"] == 7
    assert guarantees.record(tmp_path / "missing", recorded) == 0
