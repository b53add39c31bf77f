"""Prompt templates: the one place that turns (rule, text, subreddit) into model input.

A template returns a pair (text_a, text_b); text_b may be None for single-sequence models.
Encoders see the pair as `[CLS] a [SEP] b [SEP]`, so the rule and the comment stay apart.
The default leaves `subreddit` out: in this data it is spurious (it predicts the label
through who posted where, not through what the rule says).

Yes/No templates (`yes-no*`) are for decoder LLMs scored by the answer token (head `yes-no`,
see models.py): the template renders the prompt up to the end of the comment, and its
`AnswerSlot` holds the text that closes the prompt and opens the answer (the question and, for
chat formats, the end of the user turn and the start of the assistant turn) plus the two answer
words. The model appends the slot after the tokenised (and possibly truncated) prompt, so
truncating a long comment never cuts the question or the answer position off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


# ---- Yes/No prompts for decoder LLMs (head `yes-no`) ------------------------------------------


@dataclass(frozen=True)
class AnswerSlot:
    """What follows a yes-no template's text: `suffix` ends where the answer token goes.

    `yes` / `no` are the answer words as the model would write them right after `suffix` (with a
    leading space after "Answer:", without one at the start of a chat turn); the score is
    logit(first token of yes) - logit(first token of no) at the last position of `suffix`.
    """

    suffix: str
    yes: str = "Yes"
    no: str = "No"


_SYSTEM = "You are a Reddit moderator. Decide whether a comment breaks a subreddit rule. Answer with Yes or No."
_QUESTION = "Does the comment break the rule?"


def _yes_no_plain(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # Any base or instruct model: no chat markup.
    return f"{_SYSTEM}\n\nRule: {rule}\n\nComment: {text}", None


def _yes_no_chatml(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # ChatML (Qwen2 / Qwen2.5 / Qwen3, SmolLM, many fine-tunes): <|im_start|>role ... <|im_end|>
    return f"<|im_start|>system\n{_SYSTEM}<|im_end|>\n<|im_start|>user\nRule: {rule}\n\nComment: {text}", None


def _yes_no_llama3(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # Llama 3.x instruct; the tokenizer adds <|begin_of_text|> itself.
    return (
        f"<|start_header_id|>system<|end_header_id|>\n\n{_SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\nRule: {rule}\n\nComment: {text}",
        None,
    )


def _yes_no_gemma(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # Gemma / Gemma 2 / Gemma 3 instruct (no system role: it goes in the user turn); the tokenizer adds <bos>.
    return f"<start_of_turn>user\n{_SYSTEM}\n\nRule: {rule}\n\nComment: {text}", None


ANSWER_SLOTS: dict[str, AnswerSlot] = {
    "yes-no": AnswerSlot(f"\n\n{_QUESTION}\nAnswer:", yes=" Yes", no=" No"),
    "yes-no-chatml": AnswerSlot(f"\n\n{_QUESTION}<|im_end|>\n<|im_start|>assistant\n"),
    # Qwen3's chat template opens the answer of a non-thinking turn with an empty think block.
    "yes-no-qwen3": AnswerSlot(f"\n\n{_QUESTION}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    "yes-no-llama3": AnswerSlot(f"\n\n{_QUESTION}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    "yes-no-gemma": AnswerSlot(f"\n\n{_QUESTION}<end_of_turn>\n<start_of_turn>model\n"),
}

TEMPLATES.update(
    {
        "yes-no": _yes_no_plain,
        "yes-no-chatml": _yes_no_chatml,
        "yes-no-qwen3": _yes_no_chatml,
        "yes-no-llama3": _yes_no_llama3,
        "yes-no-gemma": _yes_no_gemma,
    }
)
