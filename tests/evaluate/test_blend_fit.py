import json
import math

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate import blend_fit
from jigsaw_kit.evaluate.blend import blend_oof
from jigsaw_kit.evaluate.blend_fit import fit_blend_oof, simplex_grid, write_fitted_blend


def _rows(folds=5, rules=("r1", "r2"), per=20) -> pd.DataFrame:
    """Balanced labels in every (fold, rule); each text held out once, as a `novel` OOF holds it."""
    out = [
        {"rule": r, "text": f"{r}-f{f}-t{i}", "label": i % 2, "fold": f}
        for f in range(folds)
        for r in rules
        for i in range(per)
    ]
    return pd.DataFrame(out)


def _signal(df: pd.DataFrame, rng, where=None) -> np.ndarray:
    """Informative where `where` holds (label + noise, AUC ~0.85), pure noise elsewhere."""
    where = np.ones(len(df), bool) if where is None else np.asarray(where)
    return np.where(where, df["label"] + rng.normal(0, 0.7, len(df)), rng.normal(0, 1, len(df)))


def _write(tmp_path, df: pd.DataFrame, preds: dict[str, np.ndarray]) -> list:
    paths = []
    for name, p in preds.items():
        path = tmp_path / f"{name}.csv"
        df.assign(prediction=p).sample(frac=1, random_state=len(paths)).to_csv(path, index=False)  # row order differs
        paths.append(path)
    return paths


def _lb_proxy(tmp_path, rng) -> list:
    """lb-proxy-shaped OOFs: seen folds 0-2 over both rules, unseen folds 3-8 one rule each; texts in both parts."""
    seen = _rows(folds=3).assign(part="seen")
    unseen = seen.copy().assign(part="unseen")
    unseen["fold"] = [3 + 3 * (r == "r2") + (i % 3) for i, r in enumerate(unseen["rule"])]
    df = pd.concat([seen, unseen], ignore_index=True)
    return _write(tmp_path, df, {"a": _signal(df, rng), "b": _signal(df, rng, df["part"] == "seen")})


def test_informative_input_gets_the_weight_and_held_out_beats_equal(tmp_path):
    rng = np.random.default_rng(0)
    df = _rows()
    paths = _write(tmp_path, df, {"a": _signal(df, rng), "b": rng.normal(0, 1, len(df))})
    res = fit_blend_oof(paths)
    assert res["inputs"] == [str(p) for p in paths] and res["mode"] == "global"
    assert res["weights"][0] >= 0.8
    assert all(f["weights"][0] >= 0.8 for f in res["fold_weights"])
    assert res["score_fitted_held_out"] >= res["score_equal"]
    assert res["score_fitted_in_sample"] >= res["score_fitted_held_out"] - 1e-12  # optimistic by construction here
    assert res["inputs_scores"][str(paths[0])] > 0.75 > res["score_equal"] - 0.2
    assert res["per_rule_weights"] is None and res["score_per_rule_held_out"] is None
    # asked for, per-rule wants the same weights in both rules, so it cannot beat global and is rejected
    both = fit_blend_oof(paths, per_rule=True)
    assert both["mode"] == "global" and both["per_rule_weights"] is None and "rejected" in both["note"]
    assert both["score_fitted_held_out"] == both["score_global_held_out"]


def test_held_out_fold_never_fits_its_own_weights(tmp_path, monkeypatch):
    paths = _lb_proxy(tmp_path, np.random.default_rng(1))
    seen: list[tuple[set, set]] = []
    real = blend_fit._fit

    def spy(d, rows, per_rule):
        fit_rows = d.base[rows]
        seen.append((set(zip(fit_rows.get("part", ""), fit_rows["fold"])), set(fit_rows["text"])))
        return real(d, rows, per_rule)

    monkeypatch.setattr(blend_fit, "_fit", spy)
    res = fit_blend_oof(paths, per_rule=True)
    base = pd.read_csv(paths[0])
    units = set(zip(base["part"], base["fold"]))
    assert len(units) == 9 and len(seen) == 1 + len(units) == len(res["fold_weights"]) + 1
    assert seen[0][0] == units  # the weights to ship: fitted on every fold
    for (fit_units, fit_texts), entry in zip(seen[1:], res["fold_weights"]):
        held = (entry["part"], entry["fold"])
        assert fit_units == units - {held}  # every other fold, never this one
        own = base[(base["part"] == held[0]) & (base["fold"] == held[1])]
        assert not fit_texts & set(own["text"])  # nor its texts through the other part
        assert entry["fit_rows"] == len(base) - 2 * len(own)


def test_a_fold_is_scored_with_weights_from_the_others(tmp_path):
    """A is informative except in fold 0, where only B is: fold 0 must be scored under A-heavy weights."""
    rng = np.random.default_rng(2)
    df = _rows()
    paths = _write(tmp_path, df, {"a": _signal(df, rng, df["fold"] != 0), "b": _signal(df, rng, df["fold"] == 0)})
    res = fit_blend_oof(paths)
    first = next(f for f in res["fold_weights"] if f["fold"] == 0)
    assert first["weights"][0] >= 0.8 and first["score"] < 0.7  # its own rows would have asked for B
    assert np.mean([f["score"] for f in res["fold_weights"]]) == pytest.approx(res["score_fitted_held_out"])


def test_weights_are_on_the_simplex_and_the_result_is_json(tmp_path):
    grid = simplex_grid(3, 0.1)
    assert len(grid) == math.comb(12, 2) and (grid >= 0).all() and np.allclose(grid.sum(axis=1), 1)
    assert len(np.unique(grid, axis=0)) == len(grid)
    rng = np.random.default_rng(3)
    df = _rows(folds=3)
    preds = {"a": _signal(df, rng), "b": _signal(df, rng, df["rule"] == "r2"), "c": rng.normal(0, 1, len(df))}
    res = fit_blend_oof(_write(tmp_path, df, preds), per_rule=True, grid_step=0.25)
    vectors = [res["weights"], *[f["weights"] for f in res["fold_weights"]]]
    vectors += [w for f in res["fold_weights"] for w in f["per_rule_weights"].values()]
    vectors += list((res["per_rule_weights"] or res["per_rule_candidate_weights"]).values())
    for w in vectors:
        assert len(w) == 3 and min(w) >= 0 and sum(w) == pytest.approx(1)
    out = write_fitted_blend(res, tmp_path / "fit" / "blend.json")
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")) == res
    with pytest.raises(KitError, match="divide 1"):
        fit_blend_oof(_write(tmp_path, df, preds), grid_step=0.3)
    with pytest.raises(KitError, match="at least two OOF"):
        fit_blend_oof(_write(tmp_path, df, {"a": preds["a"]}))
    df.drop(columns="fold").assign(prediction=preds["a"]).to_csv(tmp_path / "nofold.csv", index=False)
    with pytest.raises(KitError, match="fold column"):
        fit_blend_oof([tmp_path / "nofold.csv", tmp_path / "nofold.csv"])


def test_per_rule_is_kept_when_rules_need_different_inputs(tmp_path):
    rng = np.random.default_rng(4)
    df = _rows()
    r1 = df["rule"] == "r1"
    paths = _write(tmp_path, df, {"a": _signal(df, rng, r1), "b": _signal(df, rng, ~r1)})
    res = fit_blend_oof(paths, per_rule=True)
    assert res["mode"] == "per-rule" and "kept" in res["note"]
    assert res["per_rule_weights"]["r1"][0] >= 0.8 and res["per_rule_weights"]["r2"][1] >= 0.8
    assert res["score_per_rule_held_out"] > res["score_global_held_out"] + 0.05
    assert res["score_fitted_held_out"] == res["score_per_rule_held_out"]
    assert fit_blend_oof(paths)["score_fitted_held_out"] == pytest.approx(res["score_global_held_out"])


def test_lb_proxy_scores_agree_with_blend_oof(tmp_path):
    paths = _lb_proxy(tmp_path, np.random.default_rng(5))
    res = fit_blend_oof(paths)
    _, equal = blend_oof(paths, None)
    assert res["score_equal"] == pytest.approx(equal["blend"], abs=1e-12)
    assert res["inputs_scores"] == pytest.approx({k: v for k, v in equal.items() if k != "blend"}, abs=1e-12)
    _, fitted = blend_oof(paths, res["weights"])
    assert res["score_fitted_in_sample"] == pytest.approx(fitted["blend"], abs=1e-12)
    # the honest headline aggregates the held-out folds' scores as blend_oof does: folds per part, parts 2:4
    part = {p: np.mean([f["score"] for f in res["fold_weights"] if f["part"] == p]) for p in ("seen", "unseen")}
    assert res["score_fitted_held_out"] == pytest.approx((2 * part["seen"] + 4 * part["unseen"]) / 6)
