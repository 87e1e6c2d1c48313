import json

import pytest

from hfdc.runs import check_run_settings


def test_a_new_folder_records_the_settings_and_the_same_settings_resume(tmp_path):
    folder = tmp_path / "run"
    check_run_settings(folder, {"lr": 0.1, "seed": 3}, "a test run", "settings.json")
    assert json.loads((folder / "settings.json").read_text()) == {"lr": 0.1, "seed": 3}
    check_run_settings(folder, {"seed": 3, "lr": 0.1}, "a test run", "settings.json")  # same settings: no error
    assert [p.name for p in folder.iterdir()] == ["settings.json"]  # no temporary file left behind


def test_other_settings_are_refused_naming_every_changed_key(tmp_path):
    check_run_settings(tmp_path, {"lr": 0.1, "seed": 3, "old_only": 1}, "a test run", "settings.json")
    with pytest.raises(
        ValueError, match=r"holds a test run with other settings \(changed: new_only, old_only, seed\)"
    ):
        check_run_settings(tmp_path, {"lr": 0.1, "seed": 4, "new_only": 2}, "a test run", "settings.json")


def test_a_process_without_write_checks_but_never_creates(tmp_path):
    check_run_settings(tmp_path / "run", {"lr": 0.1}, "a test run", "settings.json", write=False)
    assert not (tmp_path / "run").exists()
