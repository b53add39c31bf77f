"""Prompt templates: the one place that turns (rule, text, subreddit) into model input.

A template returns a pair (text_a, text_b); text_b may be None for single-sequence models.
Encoders see the pair as `[CLS] a [SEP] b [SEP]`, so the rule and the comment stay apart.
The default leaves `subreddit` out: in this data it is spurious (it predicts the label
through who posted where, not through what the rule says).
"""

from __future__ import annotations

from collections.abc import Callable

Template = Callable[[str, str, str], tuple[str, str | None]]


def _rule_body(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    return rule, text


def _body_rule(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    return text, rule


def _rule_subreddit_body(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # Kept for comparison only: leans on a spurious feature.
    return f"r/{subreddit}. {rule}", text


def _prompt(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # Single sequence for decoder LLMs that read one prompt.
    return f"Rule: {rule}\nComment: {text}\nDoes the comment violate the rule?", None


TEMPLATES: dict[str, Template] = {
    "rule-body": _rule_body,
    "body-rule": _body_rule,
    "rule-subreddit-body": _rule_subreddit_body,
    "prompt": _prompt,
}


def render(name: str, rule: str, text: str, subreddit: str = "") -> tuple[str, str | None]:
    return TEMPLATES[name](rule, text, subreddit)
