"""GRADMM's filter and evaluation on a scripted LM whose label-word scores are known: exactly the mislabelled rows
are removed (or relabelled), top_score keeps the most probable rows, accuracy and perplexity are the hand values."""

import math

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from hfdc.gradmm import build_task, filter_synthetic, label_accuracy, perplexity
from hfdc.gradmm.evaluate import classification_rows, finetune
from hfdc.gradmm.filtering import continuation_log_probs
from hfdc.models import tiny, tiny_processor

TOKENIZER = tiny_processor("llama")
GREAT, BAD = TOKENIZER(" great", add_special_tokens=False)["input_ids"][0], TOKENIZER(" bad")["input_ids"][-1]
WONDERFUL, AWFUL = (TOKENIZER(w, add_special_tokens=False)["input_ids"][0] for w in (" wonderful", " awful"))


class ScriptedLM(torch.nn.Module):
    """At every position: logit s of " great" and -s of " bad", s = (#" wonderful" - #" awful") so far; other 0."""

    def __init__(self, vocab_size: int = len(TOKENIZER)):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, **kwargs):
        score = ((input_ids == WONDERFUL).float() - (input_ids == AWFUL).float()).cumsum(dim=1)
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        logits[..., GREAT], logits[..., BAD] = score, -score
        return type("Output", (), {"logits": logits})


# (text, intended label, s at the end): label 1 = great; rows 1 and 3 are mislabelled
ROWS = [
    ("wonderful film", 1, 1),
    ("awful film", 1, -1),
    ("awful awful film", 0, -2),
    ("wonderful wonderful wonderful", 0, 3),
    ("wonderful awful wonderful wonderful", 1, 2),
    ("awful wonderful awful", 0, -1),
]
FEATURES = Features({"text": Value("string"), "label": ClassLabel(names=[" bad", " great"])})


def rows():
    return Dataset.from_dict({"text": [r[0] for r in ROWS], "label": [r[1] for r in ROWS]}, features=FEATURES)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_remove_drops_exactly_the_mislabelled_rows():
    kept = filter_synthetic(rows(), ScriptedLM(), TOKENIZER, mode="remove")  # label words from the ClassLabel names
    assert kept["text"] == [ROWS[i][0] for i in (0, 2, 4, 5)]
    # p(label) = e^s / (e^s + e^-s) = sigmoid(2 s) for great, sigmoid(-2 s) for bad
    expected = [sigmoid(2), sigmoid(4), sigmoid(4), sigmoid(2)]
    assert kept["label_probability"] == pytest.approx(expected, rel=1e-5)


def test_relabel_gives_each_row_its_most_probable_class():
    relabelled = filter_synthetic(rows(), ScriptedLM(), TOKENIZER, mode="relabel", label_words=[" bad", " great"])
    assert relabelled["label"] == [1, 0, 0, 1, 1, 0] and relabelled["text"] == [r[0] for r in ROWS]
    assert relabelled["label_probability"] == pytest.approx([sigmoid(2 * abs(r[2])) for r in ROWS], rel=1e-5)


def test_top_score_keeps_the_most_probable_rows_of_each_class():
    top1 = filter_synthetic(rows(), ScriptedLM(), TOKENIZER, mode="top_score", top_n=1)
    assert top1["text"] == [ROWS[2][0], ROWS[4][0]]  # class 0: s = -2 beats -1 and 3; class 1: s = 2 beats 1, -1
    top2 = filter_synthetic(rows(), ScriptedLM(), TOKENIZER, mode="top_score", top_n=2)
    assert top2["text"] == [ROWS[i][0] for i in (0, 2, 4, 5)]
    with pytest.raises(ValueError, match="top_n"):
        filter_synthetic(rows(), ScriptedLM(), TOKENIZER, mode="top_score")


def test_few_shot_examples_enter_the_prompt():
    # one " wonderful" example of class 1 shifts s by +1 for every row: row 5 (s = -1) becomes s = 0 -> tie -> bad
    shots = [("wonderful", 1)]
    kept = filter_synthetic(rows(), ScriptedLM(), TOKENIZER, mode="remove", examples=shots, instruction="")
    assert kept["text"] == [ROWS[i][0] for i in (0, 2, 4, 5)]
    assert kept["label_probability"] == pytest.approx([sigmoid(4), sigmoid(2), sigmoid(6), 0.5], rel=1e-5)


def test_multi_token_continuations_sum_their_log_probabilities():
    uniform = ScriptedLM()  # no cue words: every logit 0 -> log p = -log V per token
    two_tokens = TOKENIZER("terrible", add_special_tokens=False)["input_ids"]
    assert len(two_tokens) == 2
    scores = continuation_log_probs(uniform, TOKENIZER, ["Label:"], [" film", "terrible"])
    assert scores.shape == (1, 2) and scores[0].tolist() == pytest.approx(
        [-math.log(1024), -2 * math.log(1024)], rel=1e-6
    )


def test_label_accuracy_and_perplexity_are_the_hand_values():
    task = build_task(TOKENIZER, " It was", [" bad", " great"])
    spaced = rows().map(lambda row: {"text": " " + row["text"]})  # so that every cue word is the " word" token
    assert label_accuracy(ScriptedLM(), TOKENIZER, spaced, task, batch_size=4) == pytest.approx(4 / 6)
    # a prompt that is itself a cue: the score is read after it, at each row's own last position (rows of unequal
    # length in one batch); " awful wonderful" is great only there (s = 0 before the prompt, 1 after it)
    cue_task = build_task(TOKENIZER, " wonderful", [" bad", " great"])
    texts = [" awful awful film", " wonderful film", " awful wonderful", " awful awful"]
    cue_rows = Dataset.from_dict({"text": texts, "label": [0, 1, 1, 0]}, features=FEATURES)
    assert label_accuracy(ScriptedLM(), TOKENIZER, cue_rows, cue_task, batch_size=4) == 1.0
    assert perplexity(ScriptedLM(), TOKENIZER, ["the movie was fine", "a b c"]) == pytest.approx(1024, rel=1e-5)
    # BOS, " wonderful", " wonderful": the first is predicted with s = 0 (uniform), the second with s = 1
    # (" great" +1, " bad" -1, the 1022 other logits 0)
    p1, p2 = 1 / 1024, 1 / (1022 + math.exp(1) + math.exp(-1))
    expected = math.exp(-(math.log(p1) + math.log(p2)) / 2)
    assert perplexity(ScriptedLM(), TOKENIZER, [" wonderful wonderful"]) == pytest.approx(expected, rel=1e-5)


def test_classification_rows_train_only_the_label_word_and_finetuning_lowers_its_loss(tmp_path):
    from transformers import TrainingArguments

    task = build_task(TOKENIZER, " It was", [" bad", " great"])
    train = rows()
    encoded = classification_rows(train, TOKENIZER, task)
    first = encoded[0]
    assert first["input_ids"][:-1] == task.encode(TOKENIZER, "wonderful film") and first["input_ids"][-1] == GREAT
    assert first["labels"] == [-100] * (len(first["input_ids"]) - 1) + [GREAT]

    def label_loss(model):
        with torch.no_grad():
            return sum(
                model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss.item()
                for r in encoded
            )

    model = tiny("llama", seed=1)
    before = label_loss(model)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=3,
        learning_rate=1e-2,
        per_device_train_batch_size=3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    tuned = finetune(model, TOKENIZER, train, task, args)
    assert label_loss(tuned) < 0.85 * before
    lora = finetune(tiny("llama", seed=1), TOKENIZER, train, task, args, lora_r=2)
    assert type(lora).__name__ == "PeftModelForCausalLM" and label_loss(lora) < before
