"""CV output folders side by side: headline, parts, per-rule AUCs, learning-curve slope, paired fold deltas.

    jigsaw-kit compare runs/cv/tfidf-lr-lb-proxy runs/cv/cpu-hybrid-lb-proxy --output runs/compare

Each DIR is a `jigsaw-kit cv` output folder (metrics.json in DIR, or in DIR/cv for a config's
runs/<name> folder). The first DIR is the baseline: every later one is paired with it fold by fold
(same scheme, same folds), because two recipes scored on the same held-out texts differ far less
than their fold spreads suggest. Writes compare.md, compare.json and compare.png.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless machines (Kaggle, CI), as report.py

import matplotlib.pyplot as plt
import numpy as np

from jigsaw_kit.core.atomic import atomic_path, write_json
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.folds import LB_WEIGHTS

TIE = 1e-12  # fold AUCs equal up to float noise count as a tie
FILES = {"md": "compare.md", "json": "compare.json", "png": "compare.png"}


def _num(x: Any) -> float | None:
    """A finite float or None: JSON turns NaN into None (or NaN), and failed folds carry either."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _mean_std(xs: list[float | None]) -> dict[str, float | None]:
    """Population std (ddof 0), the spread `cv` itself reports over folds."""
    a = np.array([x for x in xs if x is not None], dtype=float)
    return {"mean": float(a.mean()) if a.size else None, "std": float(a.std()) if a.size else None}


def _metrics_file(path: Path) -> Path:
    for cand in (path / "metrics.json", path / "cv" / "metrics.json"):
        if cand.is_file():
            return cand
    raise KitError(
        f"{path} holds no metrics.json (nor cv/metrics.json): run `jigsaw-kit cv ... --output-dir {path}` first."
    )


def load_cv(path: Path) -> dict:
    """metrics.json of a `jigsaw-kit cv` output folder, from DIR or DIR/cv; KitError when missing or invalid."""
    path = Path(path)
    file = _metrics_file(path)
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KitError(f"{file} is not readable JSON ({e}): run `jigsaw-kit cv ... --output-dir {path}` again.") from e
    if not isinstance(metrics, dict) or not isinstance(metrics.get("folds"), list) or "mean_rule_auc" not in metrics:
        raise KitError(
            f"{file} is not a `jigsaw-kit cv` metrics.json (no folds / mean_rule_auc): "
            f"run `jigsaw-kit cv ... --output-dir {path}` first."
        )
    problem = _shape_problem(metrics)
    if problem:
        raise KitError(
            f"{file}: {problem}, not what `jigsaw-kit cv` writes: run `jigsaw-kit cv ... --output-dir {path}` again."
        )
    return metrics


def _objects(x: Any) -> bool:
    """None, or an object whose values are objects (per_rule, parts)."""
    return x is None or (isinstance(x, dict) and all(isinstance(v, dict) for v in x.values()))


def _shape_problem(m: dict) -> str | None:
    """What in a metrics.json the comparison could not read (numbers themselves are read leniently by _num)."""
    for f in m["folds"]:
        if not isinstance(f, dict) or isinstance(f.get("fold"), bool) or not isinstance(f.get("fold"), (str, int)):
            return f"folds holds {str(f)[:60]!r}, not a fold entry with a fold name"
        if not _objects(f.get("per_rule")) or not isinstance(f.get("part") or "", str):
            return f"fold {f['fold']!r} has a malformed per_rule or part"
    for key in ("parts", "std", "learning_curve"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            return f"{key!r} is not an object"
    if not _objects(m.get("parts")) or not all(_objects(p.get("per_rule")) for p in (m.get("parts") or {}).values()):
        return "'parts' is malformed"
    for key in ("scheme", "config"):
        if m.get(key) is not None and not isinstance(m[key], str):
            return f"{key!r} is not a name"
    lc = m.get("learning_curve") or {}
    points = lc.get("points", [])
    if not isinstance(lc.get("slope_per_doubling") or {}, dict) or not isinstance(points, list):
        return "'learning_curve' is malformed"
    if not all(isinstance(p, dict) and isinstance(p.get("spread") or {}, dict) for p in points):
        return "a learning_curve point is malformed"
    return None


def _labels(paths: list[Path]) -> list[str]:
    """Folder names; a `cv` subfolder is named by its parent; duplicates get their parent folder too."""
    resolved = [Path(p).resolve() for p in paths]
    names = [p.parent.name if p.name == "cv" else p.name for p in resolved]
    bases = [p.parent if p.name == "cv" else p for p in resolved]
    labels = [f"{b.parent.name}/{n}" if names.count(n) > 1 else n for b, n in zip(bases, names)]
    # still equal (same folder twice, or same parent name): number them so table rows stay distinct
    return [f"{lab} #{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def _per_rule(m: dict) -> dict[str, dict[str, dict]]:
    """{part: {rule: {mean, std}}}: lb-proxy's own part summaries, else the fold AUCs under "all"."""
    parts = m.get("parts") or {}
    if parts:
        return {
            p: {r: {k: _num(v.get(k)) for k in ("mean", "std")} for r, v in (parts[p].get("per_rule") or {}).items()}
            for p in LB_WEIGHTS
            if p in parts
        }
    aucs: dict[str, list[float | None]] = {}
    for f in m["folds"]:
        for rule, r in (f.get("per_rule") or {}).items():
            aucs.setdefault(rule, []).append(_num(r.get("auc")))
    return {"all": {rule: _mean_std(xs) for rule, xs in aucs.items()}}


def _summary(label: str, path: Path, m: dict) -> dict[str, Any]:
    lc = m.get("learning_curve") or None
    slope = (lc or {}).get("slope_per_doubling") or {}
    curve = [
        {k: p.get(k) for k in ("fraction", "rows_per_rule_mean", "mean_rule_auc", "std")}
        | {"spread": (p.get("spread") or {}).get("headline")}
        for p in (lc or {}).get("points", [])
    ]
    return {
        "label": label,
        "path": str(path),
        "config": m.get("config"),
        "scheme": m.get("scheme"),
        "folds": len(m["folds"]),
        "headline": _num(m.get("mean_rule_auc")),
        "headline_std": _num((m.get("std") or {}).get("mean_rule_auc")),  # fold std of mean_rule_auc
        "parts": {p: {k: _num(v.get(k)) for k in ("mean", "std", "folds")} for p, v in (m.get("parts") or {}).items()},
        "per_rule": _per_rule(m),
        "slope_per_doubling": {"mean": _num(slope.get("mean")), "std": _num(slope.get("std"))} if lc else None,
        "curve": curve or None,
        "wall_time_s": _num(m.get("wall_time_s")),
    }


def _pair(base: dict, base_m: dict, other: dict, other_m: dict) -> dict[str, Any]:
    """Paired fold differences (other - base); unpaired with a reason when the folds are not the same folds."""
    out: dict[str, Any] = {"label": other["label"], "baseline": base["label"], "paired": False, "reason": None}
    if base["headline"] is not None and other["headline"] is not None:
        out["headline_diff"] = other["headline"] - base["headline"]
    if base["scheme"] != other["scheme"]:
        out["reason"] = f"schemes differ ({base['scheme']} vs {other['scheme']}): folds are not comparable"
        return out
    if base_m.get("folds_k") != other_m.get("folds_k"):  # fold0 of a 2-fold and of a 5-fold split differ
        out["reason"] = f"fold counts differ ({base_m.get('folds_k')} vs {other_m.get('folds_k')})"
        return out
    b = {f.get("fold"): f for f in base_m["folds"]}
    rows = []
    for f in other_m["folds"]:
        g = b.get(f.get("fold"))
        x, y = _num(f.get("mean_rule_auc")), _num((g or {}).get("mean_rule_auc"))
        if x is not None and y is not None:
            rows.append({"fold": f["fold"], "part": f.get("part", ""), "baseline": y, "other": x, "diff": x - y})
    if not rows:
        out["reason"] = "no fold names (with a finite AUC) in common"
        return out
    d = np.array([r["diff"] for r in rows])
    parts = {}
    for p in dict.fromkeys(r["part"] for r in rows if r["part"]):
        dp = [r["diff"] for r in rows if r["part"] == p]
        parts[p] = {"n": len(dp), "mean": float(np.mean(dp))}
    out.update(
        paired=True,
        n=len(rows),
        unmatched=len(b) + len(other_m["folds"]) - 2 * len(rows),
        mean=float(d.mean()),
        sd=float(d.std(ddof=1)) if len(d) > 1 else None,
        wins=int((d > TIE).sum()),
        ties=int((abs(d) <= TIE).sum()),
        losses=int((d < -TIE).sum()),
        parts=parts,
        folds=rows,
    )
    return out


def compare(paths: list[Path]) -> dict:
    """A plain JSON-able comparison of CV folders; the first is the baseline of the paired differences."""
    if not paths:
        raise KitError("compare needs at least one CV output folder.")
    paths = [Path(p) for p in paths]
    metrics = [load_cv(p) for p in paths]
    inputs = [_summary(lab, p, m) for lab, p, m in zip(_labels(paths), paths, metrics)]
    rules = sorted({r for s in inputs for pr in s["per_rule"].values() for r in pr})
    pairs = [_pair(inputs[0], metrics[0], s, m) for s, m in zip(inputs[1:], metrics[1:])]
    return {"baseline": inputs[0]["label"], "rules": rules, "inputs": inputs, "pairs": pairs}


def _f(x: Any, std: Any = None, sign: bool = False) -> str:
    if _num(x) is None:
        return "n/a"
    s = f"{x:+.4f}" if sign else f"{x:.4f}"
    return s + (f" ± {std:.4f}" if _num(std) is not None else "")


def _short(rule: str) -> str:
    return rule.split(":")[0].strip()[:24]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def format_markdown(result: dict) -> str:
    """One table of the inputs, then one of the paired fold differences against the first input."""
    rules = result["rules"]
    head = ["input", "config", "scheme", "headline ± fold sd", "seen", "unseen"]
    head += [_short(r) for r in rules] + ["slope/doubling", "wall s"]
    lines = ["# CV comparison", "", _row(head), "|" + "---|" * len(head)]
    for s in result["inputs"]:
        parts, pr = s["parts"], s["per_rule"]
        cells = [s["label"], s["config"], s["scheme"], _f(s["headline"], s["headline_std"])]
        cells += [_f(parts[p]["mean"], parts[p]["std"]) if p in parts else "" for p in LB_WEIGHTS]
        for r in rules:  # lb-proxy: "seen / unseen" means; other schemes: the mean over folds
            vals = [_f(pr[p][r]["mean"]) if r in pr[p] else "n/a" for p in pr]
            cells.append(" / ".join(vals) if any(v != "n/a" for v in vals) else "n/a")
        sl, wall = s["slope_per_doubling"], s["wall_time_s"]
        wall = "n/a" if wall is None else f"{wall:.1f}"
        cells += [_f(sl["mean"], sl["std"], sign=True) if sl else "n/a", wall]
        lines.append(_row(cells))
    if any(s["parts"] for s in result["inputs"]):
        lines += ["", "Rule cells of lb-proxy inputs read `seen / unseen`; headline = (2 x seen + 4 x unseen) / 6."]
    if not result["pairs"]:
        return "\n".join(lines) + "\n"
    lines += ["", f"## Paired fold differences vs {result['baseline']} (input - baseline)", ""]
    head = ["input", "pairs", "mean diff ± sd", "wins/ties/losses", "seen", "unseen", "headline diff"]
    lines += [_row(head), "|" + "---|" * len(head)]
    notes = []
    for p in result["pairs"]:
        hd = _f(p.get("headline_diff"), sign=True)
        if not p["paired"]:
            lines.append(_row([p["label"], 0, "not paired", "", "", "", hd]))
            notes.append(f"- {p['label']}: not paired, {p['reason']}.")
            continue
        parts = [_f(p["parts"][k]["mean"], sign=True) if k in p["parts"] else "" for k in LB_WEIGHTS]
        wtl = f"{p['wins']}/{p['ties']}/{p['losses']}"
        lines.append(_row([p["label"], p["n"], _f(p["mean"], p["sd"], sign=True), wtl, *parts, hd]))
        if p["unmatched"]:
            notes.append(f"- {p['label']}: {p['unmatched']} fold(s) without a partner were left out.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def plot_compare(result: dict, path: Path) -> Path | None:
    """Learning curves overlaid when any input has one, else each headline with its fold sd; None if nothing to draw."""
    inputs = [s for s in result["inputs"] if s["headline"] is not None or s["curve"]]
    if not inputs:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    if any(s["curve"] for s in inputs):
        for s in inputs:
            pts = [p for p in s["curve"] or [] if _num(p["rows_per_rule_mean"]) and _num(p["mean_rule_auc"])]
            if pts:
                x, y = [p["rows_per_rule_mean"] for p in pts], [p["mean_rule_auc"] for p in pts]
                ax.errorbar(
                    x,
                    y,
                    yerr=[_num(p.get("spread") or p["std"]) or 0 for p in pts],
                    marker="o",
                    capsize=3,
                    label=s["label"],
                )
            elif s["headline"] is not None:  # no curve: its full-data headline as a reference line
                ax.axhline(s["headline"], ls="--", lw=1, label=f"{s['label']} (no curve)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("labelled rows per rule (log2)")
        ax.set_title("Learning curves: headline vs labelled rows (error bars: fold sd)")
        ax.legend()
    else:
        x = np.arange(len(inputs))
        ax.errorbar(x, [s["headline"] for s in inputs], yerr=[s["headline_std"] or 0 for s in inputs], fmt="o",
                    capsize=4)  # fmt: skip
        ax.set_xticks(x, [s["label"] for s in inputs], rotation=20, ha="right")
        ax.set_xlabel("CV output folder")
        ax.set_title("CV headline per input (error bars: fold sd)")
    ax.set_ylabel("mean per-rule AUC (headline)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_path(Path(path), lambda t: fig.savefig(t, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return Path(path)


def write_compare(result: dict, out_dir: Path) -> dict[str, Path]:
    """compare.md, compare.json and (when there is something to draw) compare.png, each written atomically."""
    out_dir = Path(out_dir)
    md = format_markdown(result)
    written = {
        "md": atomic_path(out_dir / FILES["md"], lambda t: t.write_text(md, encoding="utf-8")),
        "json": write_json(out_dir / FILES["json"], result),
    }
    png = plot_compare(result, out_dir / FILES["png"])
    if png is not None:
        written["png"] = png
    return written
