"""The benchmark harness: ``flashsale bench`` (or ``python -m bench``); see BENCHMARKS.md."""
