"""DD-Ranking scores agree with the ``ddranking`` 0.2.0 package's formulas (read from its source text, fed the same
accuracies as fractions), edge cases included; percentages are refused; the evaluate modules give the same numbers.

The package cannot be imported without torchvision / kornia / timm, so `make install` installs it with --no-deps and
these tests execute the formula statements of its ``compute_metrics`` methods, found with ``ast``.
"""

import ast
import importlib.metadata
import importlib.util
import math
from pathlib import Path

import evaluate
import numpy as np
import pytest

from hfdc.ddranking import ars, hlr, ior, lrs, mean_std, metric_path, normalised_exp

LRS_NAMES = ("hlr", "ior", "alpha", "lrs")
ARS_NAMES = ("with_aug_score", "without_aug_score", "beta", "ars")


def _package_source(relative: str) -> str:
    spec = importlib.util.find_spec("ddranking")  # locates the package without importing it
    if spec is None:
        pytest.skip("ddranking is not installed (`make install` adds ddranking==0.2.0 with --no-deps)")
    assert importlib.metadata.version("ddranking") == "0.2.0"
    return (Path(spec.origin).parent / relative).read_text()


def _formula(relative: str, names: tuple[str, ...]):
    """A function running the package's own assignments to ``names`` in ``compute_metrics`` on given inputs."""
    tree = ast.parse(_package_source(relative))
    method = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "compute_metrics")
    statements = [
        node
        for node in ast.walk(method)
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in names
    ]
    assert sorted({s.targets[0].id for s in statements}) == sorted(names), "the package's formulas moved"
    statements.sort(key=lambda s: s.lineno)
    code = compile(ast.Module(body=statements, type_ignores=[]), relative, "exec")

    def run(**inputs):
        scope = {"np": np, **inputs}
        exec(code, scope)
        return {name: scope[name] for name in names}

    return run


# (full hard, distilled hard, distilled, random): soft unequal values, then edge cases
LRS_CASES = [
    (0.713, 0.428, 0.552, 0.497),
    (0.9, 0.9, 0.61, 0.61),  # HLR = IOR = 0
    (0.0, 1.0, 1.0, 0.0),  # the best possible: a = 1 -> 1
    (1.0, 0.0, 0.0, 1.0),  # the worst possible: a = -1 -> 0
    (0.35, 0.52, 0.3, 0.41),  # distilled beats full data (negative HLR), loses to random
]


@pytest.mark.parametrize("relative", ["metrics/soft_label.py", "metrics/hard_label.py"])
@pytest.mark.parametrize("case", LRS_CASES)
@pytest.mark.parametrize("weight", [0.5, 0.0, 1.0, 0.3])
def test_lrs_agrees_with_the_package_on_fractions(relative, case, weight):
    full, hard, syn, rand = case
    inputs = {
        "full_data_hard_label_acc": full,
        "syn_data_hard_label_acc": hard,
        "lrs_lambda": weight,
    }
    if relative.endswith("soft_label.py"):
        inputs.update(syn_data_soft_label_acc=syn, random_data_soft_label_acc=rand)
        improvement = ior(syn, rand)
    else:  # the hard-label variant measures IOR with hard labels too
        inputs.update(random_data_hard_label_acc=rand)
        improvement = ior(hard, rand)
    package = _formula(relative, LRS_NAMES)(**inputs)
    assert hlr(full, hard) == pytest.approx(package["hlr"], abs=1e-15)
    assert improvement == pytest.approx(package["ior"], abs=1e-15)
    assert lrs(hlr(full, hard), improvement, weight) == pytest.approx(package["lrs"], rel=1e-12, abs=1e-15)
    assert 0.0 <= lrs(hlr(full, hard), improvement, weight) <= 1.0


def test_lrs_edge_values():
    assert lrs(0.0, 0.0) == pytest.approx((1 - math.exp(-1)) / (math.e - math.exp(-1)))
    assert lrs(hlr(0.0, 1.0), ior(1.0, 0.0)) == pytest.approx(1.0)
    assert lrs(hlr(1.0, 0.0), ior(0.0, 1.0)) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(
    "case",
    [(0.62, 0.55, 0.58, 0.54), (0.5, 0.5, 0.5, 0.5), (1.0, 0.0, 1.0, 0.0), (0.0, 1.0, 0.0, 1.0), (0.7, 0.4, 0.2, 0.6)],
)
@pytest.mark.parametrize("weight", [0.5, 0.0, 1.0, 0.8])
def test_ars_agrees_with_the_package_on_fractions(case, weight):
    syn_aug, rand_aug, syn, rand = case
    package = _formula("metrics/aug_robust.py", ARS_NAMES)(
        syn_data_with_aug_acc=syn_aug,
        random_data_with_aug_acc=rand_aug,
        syn_data_without_aug_acc=syn,
        random_data_without_aug_acc=rand,
        ars_lambda=weight,
    )
    ours = ars(ior(syn_aug, rand_aug), ior(syn, rand), weight)
    assert ours == pytest.approx(package["ars"], rel=1e-12, abs=1e-15)
    assert 0.0 <= ours <= 1.0


def test_the_package_on_percentages_leaves_0_1_and_ours_refuses_them():
    package = _formula("metrics/soft_label.py", LRS_NAMES)(
        full_data_hard_label_acc=71.3,
        syn_data_hard_label_acc=42.8,
        syn_data_soft_label_acc=55.2,
        random_data_soft_label_acc=49.7,
        lrs_lambda=0.5,
    )
    assert package["lrs"] < 0  # a = -11.5: exp(a) - exp(-1) < 0
    with pytest.raises(ValueError, match="divide percentages by 100"):
        hlr(71.3, 42.8)
    with pytest.raises(ValueError, match="divide percentages by 100"):
        lrs(28.5, 5.5)
    with pytest.raises(ValueError, match="must lie in"):
        ior([0.5, float("nan")], [0.4, 0.4])
    with pytest.raises(ValueError, match="weight"):
        ars(0.1, 0.1, weight=1.5)


def test_per_run_arrays_and_normalised_exp():
    full, hard, syn, rand = [0.71, 0.7], [0.42, 0.46], [0.55, 0.57], [0.5, 0.49]
    per_run = lrs(hlr(full, hard), ior(syn, rand))
    expected = [normalised_exp(0.5 * (s - r) - 0.5 * (f - h)) for f, h, s, r in zip(full, hard, syn, rand)]
    np.testing.assert_allclose(per_run, expected, rtol=1e-12)
    assert mean_std(per_run) == pytest.approx((np.mean(expected), np.std(expected)))


def test_evaluate_modules_give_the_functions_numbers():
    full, hard, syn, rand = [0.71, 0.7, 0.72], [0.42, 0.46, 0.44], [0.55, 0.57, 0.53], [0.5, 0.49, 0.52]
    syn_aug, rand_aug = [0.6, 0.62, 0.58], [0.51, 0.5, 0.55]
    out = evaluate.load(metric_path("lrs")).compute(
        full_accuracy=full, distilled_hard_accuracy=hard, distilled_accuracy=syn, random_accuracy=rand
    )
    assert out["lrs"] == pytest.approx(mean_std(lrs(hlr(full, hard), ior(syn, rand)))[0])
    assert out["lrs_std"] == pytest.approx(mean_std(lrs(hlr(full, hard), ior(syn, rand)))[1])
    assert out["hlr"] == pytest.approx(np.mean(np.subtract(full, hard)))
    assert evaluate.load(metric_path("hlr")).compute(full_accuracy=full, distilled_accuracy=hard)["hlr_std"] == (
        pytest.approx(np.std(np.subtract(full, hard)))
    )
    assert evaluate.load(metric_path("ior")).compute(distilled_accuracy=syn, random_accuracy=rand)["ior"] == (
        pytest.approx(np.mean(np.subtract(syn, rand)))
    )
    out = evaluate.load(metric_path("ars")).compute(
        distilled_augmented_accuracy=syn_aug,
        random_augmented_accuracy=rand_aug,
        distilled_accuracy=syn,
        random_accuracy=rand,
        weight=0.7,
    )
    assert out["ars"] == pytest.approx(np.mean(ars(ior(syn_aug, rand_aug), ior(syn, rand), 0.7)))
    with pytest.raises(ValueError, match="no DD-Ranking metric module"):
        metric_path("accuracy")
