"""The DD-Ranking evaluator: trains evaluation models on a distilled set under the protocol, returns mean +- std.

For every run r (seed + r) and a set S of images with labels:

    Acc(S, mode, aug) = max over the learning-rate grid of max over every eval_every epochs of test accuracy

of a fresh model (seed + r) trained on S with hard labels (cross-entropy) or soft labels (KL at temperature T
between the student's and the teacher's tempered softmax; ``teacher``: the teacher labels every augmented batch,
``stored``: one soft label per image). The random baseline of run r draws, from the real training rows, as many
images of every class as S has (seed + r). HLR, IOR, LRS and ARS per run come from :mod:`hfdc.ddranking.scores`
(accuracies as fractions), then mean and std over the runs (Li et al., 2025, arXiv 2505.13300).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from hfdc.ddranking.augment import augment
from hfdc.ddranking.config import ProtocolConfig
from hfdc.ddranking.scores import ars, hlr, ior, lrs, mean_std
from hfdc.models import tiny


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t / T) || softmax(s / T)), averaged over the batch (``ddranking``'s KLDivergenceLoss)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean")


def logits(model, images: torch.Tensor) -> torch.Tensor:
    out = model(images)
    return getattr(out, "logits", out)


@torch.no_grad()
def accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of ``images`` the model classifies as ``labels`` (eval mode)."""
    model.eval()
    correct = sum(
        (logits(model, images[start : start + batch_size]).argmax(1) == labels[start : start + batch_size]).sum()
        for start in range(0, len(images), batch_size)
    )
    return float(correct) / len(images)


class Evaluator:
    """Scores distilled sets of (images, labels[, soft labels]) against random subsets of real training data.

    ``train_images`` / ``train_labels``: the real training rows (random subsets, full data); ``test_*``: where
    every accuracy is measured; images are [n, channels, side, side] tensors in the scale the distilled images
    use. ``teacher``: a classifier for the soft labels (default: the full-data model, trained once).
    ``model_fn(seed)``: a fresh evaluation model (default ``hfdc.models.tiny(config.model, ...)``).
    """

    def __init__(
        self,
        train_images: torch.Tensor,
        train_labels: torch.Tensor,
        test_images: torch.Tensor,
        test_labels: torch.Tensor,
        config: ProtocolConfig | None = None,
        teacher=None,
        model_fn=None,
    ):
        if len(train_images) != len(train_labels) or len(test_images) != len(test_labels):
            raise ValueError("images and labels must have the same number of rows (train and test)")
        self.config = config or ProtocolConfig()
        self.train_images, self.train_labels = train_images, train_labels.long()
        self.test_images, self.test_labels = test_images, test_labels.long()
        self.num_classes = int(max(self.train_labels.max(), self.test_labels.max())) + 1
        self.model_fn = model_fn or self.default_model
        self._teacher = teacher
        self._full_accuracy = self.config.full_accuracy or None

    def default_model(self, seed: int):
        """``config.model`` sized for the images and classes, initialised from ``seed``."""
        return tiny(
            self.config.model,
            seed=seed,
            num_channels=self.train_images.shape[1],
            image_size=self.train_images.shape[-1],
            num_labels=self.num_classes,
            **self.config.model_params,
        )

    # --- training one model ---
    def train(self, images, labels, soft_labels, mode: str, augmentation: str, lr: float, epochs: int, seed: int):
        """Train a fresh model (seed) on the set; returns (model, best test accuracy over the evaluations)."""
        c = self.config
        teacher = self.teacher if mode == "teacher" else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.model_fn(seed).to(images.device)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=c.momentum, weight_decay=c.weight_decay)
            schedule = {
                "cosine": lambda e: 0.5 * (1 + math.cos(math.pi * e / epochs)),
                "step": lambda e: 0.1 if e >= epochs // 2 else 1.0,
                "constant": lambda e: 1.0,
            }[c.lr_schedule]
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            best = 0.0
            for epoch in range(1, epochs + 1):
                model.train()
                for batch in torch.randperm(len(images)).split(c.batch_size):
                    x = augment(images[batch], augmentation, c.mix_beta)
                    out = logits(model, x)
                    if mode == "hard":
                        loss = F.cross_entropy(out, labels[batch])
                    else:
                        with torch.no_grad():
                            target = logits(teacher, x) if teacher is not None else soft_labels[batch]
                        loss = soft_label_loss(out, target, c.temperature)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                if epoch % c.eval_every == 0 or epoch == epochs:
                    best = max(best, accuracy(model, self.test_images, self.test_labels))
        return model, best

    def best_accuracy(self, images, labels, soft_labels, mode: str, augmentation: str, seed: int) -> float:
        """max over ``learning_rates`` of the best test accuracy of a model trained on the set."""
        return max(
            self.train(images, labels, soft_labels, mode, augmentation, lr, self.config.epochs, seed)[1]
            for lr in self.config.learning_rates
        )

    # --- the references: full data, teacher, random subsets ---
    def _fit_full(self) -> None:
        model, best = self.train(
            self.train_images,
            self.train_labels,
            None,
            "hard",
            "none",
            self.config.full_learning_rate,
            self.config.full_epochs,
            self.config.seed,
        )
        self._full_accuracy = self._full_accuracy or best
        self._teacher = self._teacher or model.eval()

    @property
    def full_accuracy(self) -> float:
        """Acc(full real data, hard labels): ``config.full_accuracy`` or one model trained on every training row."""
        if self._full_accuracy is None:
            self._fit_full()
        return self._full_accuracy

    @property
    def teacher(self):
        """The soft-label teacher: the one given, else the full-data model."""
        if self._teacher is None:
            self._fit_full()
        return self._teacher.to(self.train_images.device).eval()

    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's logits of ``images`` (the stored soft labels of a random subset)."""
        teacher = self.teacher  # trains the full-data model first if needed (outside no_grad)
        with torch.no_grad():
            return torch.cat([logits(teacher, images[s : s + 1024]) for s in range(0, len(images), 1024)])

    def random_subset(self, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real training rows with the same count per class as ``labels`` (a ValueError if a class runs short)."""
        generator = torch.Generator().manual_seed(seed)
        rows = []
        for label, count in zip(*labels.unique(return_counts=True)):
            members = (self.train_labels == label).nonzero().flatten()
            if len(members) < count:
                raise ValueError(
                    f"class {int(label)} has {int(count)} distilled images but only {len(members)} real training "
                    "rows: the random baseline needs as many (raise num_train_rows)"
                )
            rows.append(members[torch.randperm(len(members), generator=generator)[:count]])
        rows = torch.cat(rows)
        return self.train_images[rows], self.train_labels[rows]

    # --- the scores ---
    def check(self, images: torch.Tensor, labels: torch.Tensor, soft_labels) -> None:
        if len(images) == 0:
            raise ValueError("the distilled set is empty: there is nothing to evaluate")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} distilled images but {len(labels)} labels")
        if images.shape[1:] != self.train_images.shape[1:]:
            raise ValueError(
                f"distilled images are {tuple(images.shape[1:])} but the real ones {tuple(self.train_images.shape[1:])}"
                "; resize the real data (image_size) to match"
            )
        expected = (len(images), self.num_classes)
        if self.config.soft_label_mode == "stored" and (soft_labels is None or tuple(soft_labels.shape) != expected):
            shape = None if soft_labels is None else tuple(soft_labels.shape)
            raise ValueError(f"soft_label_mode=stored needs soft labels of shape {expected}, got {shape}")

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, soft_labels=None, metrics=("lrs", "ars")) -> dict:
        """Scores of the distilled set over ``num_eval`` runs: for each metric its mean and ``<metric>_std``, the
        per-run accuracies under ``runs`` and ``full_accuracy``."""
        labels = labels.long()
        self.check(images, labels, soft_labels)
        c = self.config
        mode, aug = c.soft_label_mode, c.augmentation
        runs: dict[str, list[float]] = {}
        for run in tqdm(range(c.num_eval), desc="DD-Ranking runs"):
            seed = c.seed + run
            random_images, random_labels = self.random_subset(labels, seed)
            random_soft = self.teacher_logits(random_images) if mode == "stored" else None
            sets = {"distilled": (images, labels, soft_labels), "random": (random_images, random_labels, random_soft)}
            measured = {f"{name}_accuracy": self.best_accuracy(*data, mode, aug, seed) for name, data in sets.items()}
            if "lrs" in metrics:
                hard_aug = aug if c.hard_label_augmentation else "none"
                measured["distilled_hard_accuracy"] = self.best_accuracy(*sets["distilled"], "hard", hard_aug, seed)
            if "ars" in metrics:
                for name, data in sets.items():
                    measured[f"{name}_unaugmented_accuracy"] = (
                        measured[f"{name}_accuracy"]
                        if aug == "none"
                        else self.best_accuracy(*data, mode, "none", seed)
                    )
            for key, value in measured.items():
                runs.setdefault(key, []).append(value)
        result: dict = {"full_accuracy": self.full_accuracy if "lrs" in metrics else None, "runs": runs}
        per_run = {}
        if "lrs" in metrics:
            per_run["hlr"] = hlr([self.full_accuracy] * c.num_eval, runs["distilled_hard_accuracy"])
            per_run["ior"] = ior(runs["distilled_accuracy"], runs["random_accuracy"])
            per_run["lrs"] = lrs(per_run["hlr"], per_run["ior"], c.lrs_weight)
        if "ars" in metrics:
            with_aug = ior(runs["distilled_accuracy"], runs["random_accuracy"])
            without = ior(runs["distilled_unaugmented_accuracy"], runs["random_unaugmented_accuracy"])
            per_run["ars"] = ars(with_aug, without, c.ars_weight)
        for name, values in per_run.items():
            result[name], result[f"{name}_std"] = mean_std(values)
        return result

    def label_robust_score(self, images, labels, soft_labels=None) -> dict:
        """LRS (with HLR and IOR) of the distilled set: :meth:`evaluate` with ``metrics=("lrs",)``."""
        return self.evaluate(images, labels, soft_labels, metrics=("lrs",))

    def augmentation_robust_score(self, images, labels, soft_labels=None) -> dict:
        """ARS of the distilled set: :meth:`evaluate` with ``metrics=("ars",)``."""
        return self.evaluate(images, labels, soft_labels, metrics=("ars",))
