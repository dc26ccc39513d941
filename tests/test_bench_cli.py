"""`python -m bench`: only a full run may write the tracked BENCHMARKS.md and bench/results.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import default_output, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("quick", "only", "expected"),
    [
        (False, "", "BENCHMARKS.md"),
        (True, "", "test-output/BENCHMARKS.quick.md"),
        (False, "pickup", "test-output/BENCHMARKS.pickup.md"),
        (True, "pickup,ttft", "test-output/BENCHMARKS.pickup+ttft.quick.md"),
    ],
)
def test_only_a_full_run_writes_the_tracked_report(quick: bool, only: str, expected: str) -> None:
    assert default_output(quick=quick, only=only) == ROOT / expected


def test_a_partial_run_refuses_to_overwrite_the_tracked_report() -> None:
    tracked = (ROOT / "BENCHMARKS.md").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "pickup", "--output", str(ROOT / "BENCHMARKS.md")])
    assert exit_info.value.code == 2
    assert (ROOT / "BENCHMARKS.md").read_bytes() == tracked


def test_analysis_replaces_only_the_appended_analysis(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    tables = "# relayq benchmarks\n\n| figure | relayq |\n|---|---|\n| x | 1 ms |\n"
    report.write_text(tables + "\n## Analysis (old)\n\nfigures of another run\n")

    with pytest.raises(SystemExit) as exit_info:
        main(["--analysis", "--output", str(report)])

    assert exit_info.value.code == 0
    text = report.read_text()
    assert text.startswith(tables)
    assert "figures of another run" not in text
    assert text.rstrip().endswith((ROOT / "bench" / "ANALYSIS.md").read_text().rstrip())


def test_analysis_refuses_a_report_without_one(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# relayq benchmarks\n")
    with pytest.raises(ValueError, match="no '## Analysis' section"):
        main(["--analysis", "--output", str(report)])
    assert report.read_text() == "# relayq benchmarks\n"
