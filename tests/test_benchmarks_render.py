"""benchmarks/README.md tables come from the JSON result files."""

import json

from benchmarks.render import render, table


def test_table_columns_are_the_union_of_row_keys():
    assert table([{"a": 1, "b": 0.123456}, {"a": 2, "c": "x"}]).splitlines() == [
        "| a | b | c |",
        "|---|---|---|",
        "| 1 | 0.1235 |  |",
        "| 2 |  | x |",
    ]


def test_render_includes_command_machine_rows_and_notes(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "notes").mkdir()
    result = {
        "command": "python -m benchmarks.toy --n 3",
        "machine": "2 cores",
        "rows": [{"method": "m", "time_s": 1.5}],
    }
    (tmp_path / "results" / "toy.json").write_text(json.dumps(result))
    (tmp_path / "notes" / "toy.md").write_text("The method lost here.\n")
    text = render(tmp_path / "results", tmp_path / "notes")
    assert "## toy" in text and "`python -m benchmarks.toy --n 3`" in text and "Machine: 2 cores" in text
    assert "| m | 1.5 |" in text and "The method lost here." in text
