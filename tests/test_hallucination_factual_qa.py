"""The embedded factual QA set: >= 300 short-answer questions with gold aliases, through hfdc.data.load."""

import pytest

from hfdc.data import load
from hfdc.data.factual_qa import all_questions, parse_facts
from hfdc.hallucination.data import hallucination_labels, load_split


def test_factual_qa_loads_by_name_with_disjoint_mixed_splits():
    data = load("factual_qa", n_validation=100, n_test=120, seed=1)
    assert {name: split.num_rows for name, split in data.items()} == {
        "train": len(all_questions()) - 220,
        "validation": 100,
        "test": 120,
    }
    assert len(all_questions()) >= 300
    questions = [q for split in data.values() for q in split["question"]]
    assert len(set(questions)) == len(questions) == len(all_questions())
    # every category reaches the test split roughly in proportion (capitals are 115 of 310)
    categories = data["test"]["category"]
    assert set(categories) == {"capital", "chemical_symbol", "author", "currency", "planet", "continent", "painter"}
    assert 35 <= categories.count("capital") <= 55
    assert all(answers and all(a.strip() for a in answers) for answers in data["test"]["answers"])
    with pytest.raises(ValueError, match="exceeds the 310 questions"):
        load("factual_qa", n_validation=300, n_test=300)


def test_facts_and_aliases_label_answers():
    rows = {r["question"]: r["answers"] for r in all_questions()}
    assert rows["What is the capital of Australia?"] == ["Canberra"]
    assert rows["What is the chemical symbol for gold?"] == ["Au"]
    assert rows["Who wrote Nineteen Eighty-Four?"][:2] == ["George Orwell", "Orwell"]
    assert rows["Which planet is known as the Red Planet?"] == ["Mars"]
    assert parse_facts("Which planet is the fourth from the Sun?: Mars | the red one") == [
        ("Which planet is the fourth from the Sun?", ["Mars", "the red one"])
    ]
    golds = [rows["What is the capital of Ukraine?"], rows["What is the capital of Australia?"]]
    assert hallucination_labels(["Kiev", "Sydney"], golds) == [0, 1]
    questions, split_golds = load_split("factual_qa", "validation", dataset_params={"n_validation": 30, "n_test": 30})
    assert len(questions) == 30 and all(rows[q] == g for q, g in zip(questions, split_golds))
