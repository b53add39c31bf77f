"""A rehearsal folder shaped like Kaggle's hidden test, with its labels kept beside it to score against.

    jigsaw-kit hidden-test --data-dir ../shared/data/jigsaw-agile-community-rules --out /tmp/hidden54k
    jigsaw-kit run --data-dir /tmp/hidden54k --config cpu-hybrid --output /tmp/hidden54k-sub.csv
    jigsaw-kit hidden-test --out /tmp/hidden54k --score /tmp/hidden54k-sub.csv

The public files hold 2,029 train rows under 2 rules and a 10-row test.csv; the submission is run on
about 54,000 hidden rows under 6 rules, 4 of them absent from train.csv. Time and memory at that size
can only be seen on a folder of that size, so this writes one from any competition folder:

- test.csv: `rows` rows (54,059 by default) split evenly over `rules` rules; the `rules - unseen` most
  frequent train rules keep their text, the others get invented texts (UNSEEN_RULES) that train.csv
  lacks, like the hidden test's. Row order is shuffled, row_ids follow train.csv's last one;
- bodies are the source's labelled texts (train bodies and every example, labelled by role), each
  reused under mutations (a prefix, a suffix, a dropped word, a swapped sentence, a typo) until the
  rule has enough, so every body is distinct (case- and whitespace-insensitively, as the hybrid's
  lookup compares) and none equals a train.csv text. An invented rule reuses the pool of a train
  rule, so its texts are not about its topic: the per-rule models learn it from the examples alone,
  which is what they do for an unseen rule anyway, but its AUC says nothing about that topic;
- 2 positive + 2 negative examples per row, drawn from the same rule's bodies in this file, as
  train.csv's are (every one of its 8,116 examples is a train.csv body of its rule, and about half
  of the bodies serve as examples: `example_share`). A row's own body is never among its examples;
- train.csv is copied unchanged, sample_submission.csv holds test.csv's ids at 0.5, and the labels
  go to hidden_labels.csv (row_id, rule, rule_violation, source_rule, unseen, held_out), which the kit
  never reads. SYNTHETIC.json records the seed, the source hashes and the rule mapping.

Mutated siblings of about half the bodies serve as labelled examples (and a seen rule's sources are
train.csv texts), so the all-rows score is near 1 and measures nothing but the lookup. `--score`
also reports the held-out rows of the unseen rules: bodies none of whose siblings is labelled
anywhere, learnt from the examples alone. Even that is a synthetic figure: the folder is for time,
memory and pipeline rehearsal, and a score only compares methods with each other.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS
from jigsaw_kit.core.metrics import per_rule_auc
from jigsaw_kit.data.competition import EXAMPLE_COLUMNS, TEST_COLUMNS, load_competition
from jigsaw_kit.data.submission import read_submission

log = logging.getLogger(__name__)

LABELS_FILE = "hidden_labels.csv"
MANIFEST_FILE = "SYNTHETIC.json"

# Invented rule texts in the style of the competition's, with subreddits where such a rule lives.
# Order matters: rule i of the unseen ones takes the i-th of these.
UNSEEN_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "No medical advice: Do not give or ask for diagnoses, dosages or treatment plans; see a doctor instead.",
        ("AskDocs", "health", "nursing", "Fitness"),
    ),
    (
        "No spoilers: Do not post plot twists, deaths or endings of shows, films, books or games "
        "unless they are hidden with spoiler tags.",
        ("movies", "television", "books", "gaming"),
    ),
    (
        "No financial advice: Do not recommend specific stocks, coins, loans or tax schemes, "
        "and do not ask others what to invest in.",
        ("personalfinance", "investing", "wallstreetbets", "CryptoCurrency"),
    ),
    (
        "No promotion of illegal activity: Do not encourage, explain or ask how to commit crimes, "
        "buy drugs, pirate content or evade the law.",
        ("LifeProTips", "Drugs", "Piracy", "AskReddit"),
    ),
    (
        "No harassment: Do not insult, threaten or target other users, and do not encourage others to.",
        ("AskReddit", "news", "relationships"),
    ),
    (
        "No personal information: Do not post names, addresses, phone numbers or other details "
        "that identify a private person.",
        ("legaladvice", "AskReddit", "news"),
    ),
)

_PREFIXES = (
    "Honestly, ",
    "Not gonna lie, ",
    "Edit: ",
    "FWIW ",
    "Just saying, ",
    "Serious question: ",
    "Lol ",
    "Same here. ",
    "Update: ",
    "PSA: ",
    "Okay so ",
    "Real talk: ",
)
_SUFFIXES = (
    " Thanks.",
    " Just my two cents.",
    " Hope this helps!",
    " Anyone else?",
    " /s",
    " Edit: typo.",
    " Cheers",
    " lol",
    " Source: been there.",
    " ymmv",
    " Thoughts?",
    " Good luck!",
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")
_MAX_CHARS = 520  # public bodies stop at 499 characters; a mutation may add a little


def _norm(text: str) -> str:
    # The hybrid's lookup identity (embedding/lookup.lookup_key): case and whitespace do not make texts distinct.
    return _SPACE.sub(" ", text).strip().casefold()


def _mutate(text: str, rng: random.Random) -> str:
    """One or two small edits of the kind real comments differ by; the meaning (and label) stays."""
    for _ in range(rng.choice((1, 1, 2))):
        kind = rng.randrange(6)
        if kind == 0:
            text = rng.choice(_PREFIXES) + text[:1].lower() + text[1:]
        elif kind == 1:
            text = text.rstrip() + rng.choice(_SUFFIXES)
        elif kind == 2:
            words = text.split(" ")
            if len(words) > 8:  # drop one word, never the first (keeps the opening intact)
                del words[rng.randrange(1, len(words))]
                text = " ".join(words)
            else:
                text = text + rng.choice(_SUFFIXES)
        elif kind == 3:
            parts = _SENTENCES.split(text)
            if len(parts) > 1:
                i = rng.randrange(len(parts) - 1)
                parts[i], parts[i + 1] = parts[i + 1], parts[i]
                text = " ".join(parts)
            else:
                text = rng.choice(_PREFIXES) + text
        elif kind == 4:
            spots = [i for i in range(1, len(text) - 1) if text[i].isalpha() and text[i + 1].isalpha()]
            if spots:  # a transposition typo
                i = rng.choice(spots)
                text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            else:
                text = text + rng.choice(_SUFFIXES)
        else:
            text = text.replace(", ", " , ", 1) if ", " in text else text + rng.choice((".", "!", "..."))
    if len(text) > _MAX_CHARS:  # keep the public length range: cut at a word
        text = text[:_MAX_CHARS].rsplit(" ", 1)[0]
    return text


def _labelled_pool(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """(rule, text, label, subreddit) of every labelled text in the source, one label per text and rule."""
    frames = [
        train[["rule", "body", "subreddit", "rule_violation"]].set_axis(["rule", "text", "subreddit", "label"], axis=1)
    ]
    for df in (train, test):
        for col in EXAMPLE_COLUMNS:
            f = df[["rule", col, "subreddit"]].set_axis(["rule", "text", "subreddit"], axis=1)
            frames.append(f.assign(label=1 if col.startswith("positive") else 0))
    pool = pd.concat(frames, ignore_index=True)
    pool["rule"] = pool["rule"].str.strip()
    pool = pool[pool["text"].str.strip() != ""]
    # A text labelled both ways under one rule: majority, ties dropped (as the kit's dedup does).
    agg = pool.groupby(["rule", "text"], sort=True).agg(label=("label", "mean"), subreddit=("subreddit", "first"))
    agg = agg[agg["label"] != 0.5].reset_index()
    agg["label"] = (agg["label"] > 0.5).astype(int)
    return agg


def _split_rows(rows: int, rules: int) -> list[int]:
    base, extra = divmod(rows, rules)
    return [base + (1 if i < extra else 0) for i in range(rules)]


def _bodies(
    pool: pd.DataFrame, n: int, used: set[str], rng: random.Random, subreddits: tuple[str, ...] | None
) -> pd.DataFrame:
    """n distinct mutated texts from one rule's pool, cycling through it in a shuffled order."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    texts, labels, subs = pool["text"].tolist(), pool["label"].tolist(), pool["subreddit"].tolist()
    out_text, out_label, out_sub, out_group = [], [], [], []
    i = 0
    while len(out_text) < n:
        if i > 50 * n:
            raise KitError("could not make enough distinct bodies; the source pool is too small for --rows.")
        j = order[i % len(order)]
        i += 1
        base = texts[j]
        for _ in range(20):  # a collision is rare; editing the last attempt further soon escapes it
            t = _mutate(base, rng)
            if _norm(t) not in used:
                break
            base = t
        else:
            continue
        used.add(_norm(t))
        out_text.append(t)
        out_label.append(labels[j])
        out_sub.append(rng.choice(subreddits) if subreddits else subs[j])
        out_group.append(j)
    return pd.DataFrame({"body": out_text, "label": out_label, "subreddit": out_sub, "group": out_group})


def _pick_examples(own: np.ndarray, pool: np.ndarray, k: int, nrng: np.random.Generator) -> np.ndarray:
    """(len(own), k) positions from pool, distinct within a row and never the row's own position."""
    picks = pool[nrng.integers(0, len(pool), size=(len(own), k))]
    for _ in range(1000):
        bad = picks == own[:, None]
        for c in range(1, k):
            bad[:, c] |= (picks[:, :c] == picks[:, c : c + 1]).any(axis=1)
        if not bad.any():
            return picks
        picks[bad] = pool[nrng.integers(0, len(pool), size=int(bad.sum()))]
    raise KitError("could not draw distinct examples; use more --rows per rule.")


def _check_request(src: Any, out: Path, rows: int, rules: int, unseen: int, n_train_rules: int) -> None:
    seen = rules - unseen
    if not 0 <= unseen <= len(UNSEEN_RULES) or seen < 0 or seen > n_train_rules:
        raise KitError(
            f"--rules {rules} --unseen {unseen}: needs 0 <= unseen <= {len(UNSEEN_RULES)} and at most "
            f"{n_train_rules} seen rules (the train rules of {src.data_dir})."
        )
    if rows < rules * 8:
        raise KitError(f"--rows {rows}: at least 8 rows per rule are needed to draw 2+2 examples apart from the body.")
    if out.resolve() == src.data_dir.resolve():
        raise KitError(f"--out {out} is the source folder; choose a new folder.")
    if out.exists() and not (out / MANIFEST_FILE).is_file():
        # Only a folder this module wrote is replaced: never a real competition folder.
        raise KitError(
            f"--out {out} exists and was not written by hidden_test ({MANIFEST_FILE} absent). Choose a new folder."
        )


def _rule_plan(source_rules: list[str], seen: int, unseen: int, data_dir: Path) -> list[tuple]:
    """(rule text, source rule whose pool it takes, subreddits or None, unseen?) per test rule: the `seen` most
    frequent train rules as themselves, then the invented ones, which borrow the pools of the train rules not kept
    as seen first, then cycle."""
    spare = source_rules[seen:] + source_rules[:seen]
    plan = [(r, r, None, False) for r in source_rules[:seen]]
    for j in range(unseen):
        text, subs = UNSEEN_RULES[j]
        if text in set(source_rules):
            raise KitError(f"invented rule {text!r} is in {data_dir}/train.csv; it would not be unseen.")
        plan.append((text, spare[j % len(spare)], subs, True))
    return plan


def _rule_part(rule: str, source: str, is_unseen: bool, bodies: pd.DataFrame, example_share: float,
               nrng: np.random.Generator) -> pd.DataFrame:  # fmt: skip
    """One rule's test rows: its bodies, 2+2 examples drawn from a share of them, and the hidden label columns."""
    n = len(bodies)
    # Examples come from a share of the rule's bodies, as in train.csv (module docstring). The share is
    # drawn by source text: a body whose source is not drawn has no mutated sibling among the examples,
    # so those rows (held_out in hidden_labels.csv) score a model on texts it has not seen labelled.
    groups = np.unique(bodies["group"])
    drawn = nrng.permutation(groups)[: max(1, round(example_share * len(groups)))]
    in_pool = bodies["group"].isin(drawn).to_numpy()
    pos_pool = np.flatnonzero(in_pool & (bodies["label"] == 1).to_numpy())
    neg_pool = np.flatnonzero(in_pool & (bodies["label"] == 0).to_numpy())
    if min(len(pos_pool), len(neg_pool)) < 3:
        raise KitError(
            f"rule {rule!r}: {len(pos_pool)} positive and {len(neg_pool)} negative example bodies; use more --rows."
        )
    own = np.arange(n)
    p, q = _pick_examples(own, pos_pool, 2, nrng), _pick_examples(own, neg_pool, 2, nrng)
    body = bodies["body"].to_numpy()
    return pd.DataFrame(
        {
            "body": body,
            "rule": rule,
            "subreddit": bodies["subreddit"],
            "positive_example_1": body[p[:, 0]],
            "positive_example_2": body[p[:, 1]],
            "negative_example_1": body[q[:, 0]],
            "negative_example_2": body[q[:, 1]],
            "rule_violation": bodies["label"],
            "source_rule": source,
            "unseen": is_unseen,
            "held_out": ~in_pool,
        }
    )


def _write_folder(out: Path, src: Any, test: pd.DataFrame, manifest: dict[str, Any]) -> None:
    """The four files and SYNTHETIC.json, written beside out and renamed onto it: never half a folder."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(src.data_dir / "train.csv", tmp / "train.csv")
    test[TEST_COLUMNS].to_csv(tmp / "test.csv", index=False)
    test[["row_id"]].assign(rule_violation=0.5).to_csv(tmp / "sample_submission.csv", index=False)
    test[["row_id", "rule", "rule_violation", "source_rule", "unseen", "held_out"]].to_csv(
        tmp / LABELS_FILE, index=False
    )
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a half-written folder never carries the final name


def synthesize_hidden(
    data_dir: str | Path,
    out_dir: str | Path,
    rows: int = HIDDEN_TEST_ROWS,
    rules: int = 6,
    unseen: int = 4,
    seed: int = 0,
    example_share: float = 0.5,
) -> Path:
    """Write out_dir/{train,test,sample_submission}.csv + hidden_labels.csv + SYNTHETIC.json; return out_dir."""
    out = Path(out_dir)
    src = load_competition(data_dir)  # validated: a bad source fails here with the loader's message
    train = src.train
    by_freq = train["rule"].str.strip().value_counts()
    _check_request(src, out, rows, rules, unseen, len(by_freq))
    pool = _labelled_pool(train, src.test)
    train_texts = {_norm(t) for t in pd.concat([train["body"], *(train[c] for c in EXAMPLE_COLUMNS)])}
    plan = _rule_plan(list(by_freq.index), rules - unseen, unseen, src.data_dir)

    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    used = set(train_texts)  # no body may equal a train text: its label would leak through the lookup
    parts = []
    for (rule, source, subs, is_unseen), n in zip(plan, _split_rows(rows, rules)):
        bodies = _bodies(pool[pool["rule"] == source].reset_index(drop=True), n, used, rng, subs)
        parts.append(_rule_part(rule, source, is_unseen, bodies, example_share, nrng))
    test = pd.concat(parts, ignore_index=True)
    test = test.iloc[nrng.permutation(len(test))].reset_index(drop=True)  # the hidden file interleaves rules
    test.insert(0, "row_id", np.arange(len(test)) + int(train["row_id"].max()) + 1)

    manifest = {
        "synthetic": True,
        "note": "bodies are mutated copies of the source's labelled texts; see jigsaw_kit/hidden_test.py",
        "source": str(src.data_dir),
        "source_hashes": src.hashes,
        "rows": rows,
        "seed": seed,
        "example_share": example_share,
        "rules": [
            {"rule": r, "source_rule": s, "unseen": u, "rows": n}
            for (r, s, _, u), n in zip(plan, _split_rows(rows, rules))
        ],
    }
    _write_folder(out, src, test, manifest)
    log.info("wrote %s: %d test rows under %d rules (%d unseen)", out, len(test), rules, unseen)
    return out


def score_hidden(out_dir: str | Path, submission: str | Path) -> dict:
    """Mean per-rule AUC of a submission against hidden_labels.csv, plus each rule's AUC."""
    labels_path = Path(out_dir) / LABELS_FILE
    if not labels_path.is_file():
        raise KitError(f"{labels_path} not found: score against a folder written by `jigsaw-kit hidden-test`.")
    try:  # written by hidden-test itself; read with its types (unseen, held_out are booleans)
        labels = pd.read_csv(labels_path)
        labels = labels[["row_id", "rule", "rule_violation", "unseen", "held_out"]]
    except (ValueError, KeyError, UnicodeDecodeError) as e:  # EmptyDataError and ParserError are ValueErrors
        raise KitError(
            f"{labels_path} is damaged ({type(e).__name__}): write the folder again with hidden-test."
        ) from None
    sub = read_submission(Path(submission))
    merged = labels.merge(sub, on="row_id", how="left", suffixes=("", "_pred"))
    if merged["rule_violation_pred"].isna().any():
        raise KitError(f"{submission}: {int(merged['rule_violation_pred'].isna().sum())} test rows have no prediction.")
    table = per_rule_auc(merged["rule"], merged["rule_violation"], merged["rule_violation_pred"])
    unseen = labels.groupby("rule")["unseen"].first()
    table["unseen"] = table["rule"].map(unseen)
    # held_out rows of unseen rules: no mutated sibling is labelled anywhere (a seen rule's sources are
    # train.csv texts under the same rule, so its held-out rows still have labelled siblings there).
    clean = merged[merged["held_out"] & merged["unseen"]]
    held = per_rule_auc(clean["rule"], clean["rule_violation"], clean["rule_violation_pred"]).set_index("rule")["auc"]
    table["auc_held_out"] = table["rule"].map(held)
    return {
        "mean_rule_auc": float(table["auc"].mean()),
        "mean_rule_auc_unseen_held_out": float(held.mean()),
        "per_rule": table.to_dict("records"),
    }


def format_score(folder: str | Path, res: dict[str, Any]) -> str:
    """The lines `jigsaw-kit hidden-test --score` prints: the synthetic headline, then each rule."""
    lines = [
        f"SYNTHETIC folder {folder}: mean per-rule AUC {res['mean_rule_auc']:.4f} (all rows); "
        f"{res['mean_rule_auc_unseen_held_out']:.4f} (unseen rules, rows with no labelled sibling)"
    ]
    for r in res["per_rule"]:
        tag = "unseen" if r["unseen"] else "seen  "
        held = f"{r['auc_held_out']:.4f}" if r["auc_held_out"] == r["auc_held_out"] else "  -   "
        lines.append(f"  {r['auc']:.4f}  {held}  {tag}  n={r['n']:<5} pos={r['positives']:<5} {r['rule'][:64]}")
    return "\n".join(lines)
