"""Prompt templates: the one place that turns (rule, text, subreddit) into model input.

A template returns a pair (text_a, text_b); text_b may be None for single-sequence models.
Encoders see the pair as `[CLS] a [SEP] b [SEP]`, so the rule and the comment stay apart.
The default leaves `subreddit` out: in this data it is spurious (it predicts the label
through who posted where, not through what the rule says).

Yes/No templates (`yes-no*`; `yes-no-chat` takes its markup from the tokenizer) are for decoder LLMs
scored by the answer token (head `yes-no`, see models.py): the template renders the prompt up to the
end of the comment, and its `AnswerSlot` holds the text that closes the prompt and opens the answer
(the question and, for chat formats, the end of the user turn and the start of the assistant turn)
plus the two answer words. The model appends the slot after the tokenised (and possibly truncated)
prompt, so truncating a long comment never cuts the question or the answer position off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from jigsaw_kit.core.errors import KitError

Template = Callable[[str, str, str], tuple[str, str | None]]


def _rule_body(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    return rule, text


# ---- URL keywords (template `rule-body-urls`) -------------------------------------------------
# Links are common here (40% of the deduplicated training rows carry one) and a subword tokenizer shreds
# "best-deals.com/free-iphone" into pieces that say little; the words in it ("best deals free iphone") do not.
# Kaggle's public DeBERTa-v3 notebook (and 9th place's models, trained on its data) appended them to the comment.

# http(s) URLs anywhere (also glued to a word: "sitehttp://..."), and bare www. links not inside one.
# Brackets, quotes, braces and pipes end a link: Reddit markdown wraps links as [text](url).
_URL = re.compile(r"https?://[^\s<>()\[\]{}\"'|\\^`]+|(?<![\w./@-])www\.[^\s<>()\[\]{}\"'|\\^`]+", re.IGNORECASE)
_TRAILING = ".,;:!?*'\"~"  # sentence punctuation after a link is not part of it
_WORD_SPLIT = re.compile(r"[\W_]+")  # dots, hyphens, slashes, underscores, %, =, & ...
# A ccTLD's generic second level (example.co.uk, example.com.au): as empty of meaning as the TLD itself.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"})
# File extensions say nothing about the page.
_EXTENSIONS = frozenset({"html", "htm", "shtml", "php", "asp", "aspx", "jsp", "cgi"})
URL_KEYWORDS_CAP = 20  # a link-farm comment must not push the comment itself out of max_length


def _words(part: str) -> list[str]:
    # Tokens with a digit are ids, dates, hashes (youtu.be/l0HvPMpm4p4, /2017/01/02, ?id=44838): noise.
    return [w for w in _WORD_SPLIT.split(part.lower()) if len(w) > 1 and not any(c.isdigit() for c in w)]


def _host_words(host: str) -> list[str]:
    labels = [x for x in host.lower().rstrip(".").split(".") if x]
    if labels and re.fullmatch(r"www\d*", labels[0]):
        labels = labels[1:]
    if len(labels) > 1:  # the TLD (com, org, io, pl, be in youtu.be ...) is never a keyword
        tld = labels.pop()
        if len(labels) > 1 and len(tld) == 2 and labels[-1] in _SECOND_LEVEL:
            labels.pop()
    return [w for label in labels for w in _words(label)]


def url_keywords(text: str) -> list[str]:
    """Words of the links in `text`: host without www. and TLD, path segments, query parameter names.

    Lowercased, split on dots, hyphens, slashes, underscores and other punctuation; tokens with digits (ids, dates) and
    one-letter tokens dropped; query values and #fragments dropped (tracking codes and ids, rarely
    words); file extensions (html, php) dropped; de-duplicated in order of appearance and capped at
    URL_KEYWORDS_CAP words over all links.

    >>> url_keywords("Check https://www.best-deals.com/shop/free-iphone-2024?ref=x and www.example.co.uk")
    ['best', 'deals', 'shop', 'free', 'iphone', 'ref', 'example']
    >>> url_keywords("no links here")
    []
    """
    out: dict[str, None] = {}  # insertion-ordered set
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        if not url.lower().startswith(("http://", "https://")):
            url = "http://" + url
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:  # a malformed link is skipped, never an error in data prep
            continue
        names = [kv.split("=", 1)[0] for kv in re.split(r"[&;]", parts.query)]
        path = [w for w in _words(unquote(parts.path)) if w not in _EXTENSIONS]  # %20 -> space
        words = _host_words(host) + path + [w for n in names for w in _words(n)]
        for w in words:
            out.setdefault(w)
            if len(out) >= URL_KEYWORDS_CAP:
                return list(out)
    return list(out)


def with_url_keywords(text: str) -> str:
    """The text followed by " URL: " and its links' keywords; unchanged when it has none."""
    words = url_keywords(text)
    return f"{text} URL: {' '.join(words)}" if words else text


def _rule_body_urls(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    # As rule-body, keywords after the comment as in the public notebook. Pair truncation trims the end
    # of the longer segment first, so when rule + comment overflow max_length the keywords go first:
    # choose max_length from measured lengths (configs/cpu-crossenc.yaml).
    return rule, with_url_keywords(text)


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
    # encoders only: the public recipes that used URL keywords were encoder fine-tunes
    "rule-body-urls": _rule_body_urls,
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


# ---- `yes-no-chat`: the prompt from the tokenizer's own chat template -------------------------------------
# The rows carry only the body (rule and comment); the model puts the chat markup around it as token ids:
# the prefix (system turn, start of the user turn) after the tokenizer's own leading special tokens, the
# slot (question, end of the user turn, start of the assistant's) after the truncated body. Both come from
# rendering one conversation with the tokenizer's chat template (chat_prompt_parts), so every family
# (Qwen3, Llama 3, Gemma, ...) gets its own format; a tokenizer without a template gets ChatML.

CHAT = "yes-no-chat"
_BODY = "\ue000BODY\ue000"  # a private-use sentinel no template alters


def _yes_no_body(rule: str, text: str, subreddit: str) -> tuple[str, str | None]:
    return f"Rule: {rule}\n\nComment: {text}", None


TEMPLATES[CHAT] = _yes_no_body
# What the slot is before a tokenizer is known (config checks, and the fallback for a tokenizer without a
# chat template); chat_prompt replaces it with the tokenizer's own.
ANSWER_SLOTS[CHAT] = ANSWER_SLOTS["yes-no-chatml"]
CHATML_PREFIX = f"<|im_start|>system\n{_SYSTEM}<|im_end|>\n<|im_start|>user\n"


def chat_prompt_parts(
    render_chat: Callable[[list[dict[str, str]]], str], bos_token: str | None
) -> tuple[str, AnswerSlot]:
    """(prefix, slot) of `yes-no-chat` from a chat-template renderer: messages -> text with the generation prompt.

    The conversation is a system turn (folded into the user turn when the template refuses a system role,
    as Gemma's does) and a user turn "<body>\\n\\n<question>"; the text before the body is the prefix
    (less a leading bos_token: pass the tokenizer's bos only when it adds it itself), the text after it
    the answer slot, answered "Yes" / "No" at the start of the assistant turn.
    """
    user = f"{_BODY}\n\n{_QUESTION}"
    try:
        text = render_chat([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}])
    except Exception:  # jinja's TemplateError from raise_exception('System role not supported'), and kin
        text = render_chat([{"role": "user", "content": f"{_SYSTEM}\n\n{user}"}])
    if text.count(_BODY) != 1 or _SYSTEM not in text:
        raise ValueError("the chat template does not render the conversation's messages verbatim")
    prefix, suffix = text.split(_BODY)
    if bos_token and prefix.startswith(bos_token):
        prefix = prefix[len(bos_token) :]
    return prefix, AnswerSlot(suffix)


def chat_prompt(tokenizer: Any) -> tuple[str, AnswerSlot, int]:
    """(prefix, slot, lead) of template `yes-no-chat` for this tokenizer: its own chat template's markup.

    `lead` is how many special tokens the tokenizer puts before the text itself (Llama's and Gemma's bos):
    the prefix goes after them. A tokenizer without a chat template gets ChatML (as `yes-no-chatml`).
    """
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    lead = max(len(full) - len(plain), 0)
    if not getattr(tokenizer, "chat_template", None):
        return CHATML_PREFIX, ANSWER_SLOTS["yes-no-chatml"], lead
    bos = tokenizer.bos_token if lead and full[0] == tokenizer.bos_token_id else None

    def render_chat(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    try:
        prefix, slot = chat_prompt_parts(render_chat, bos)
    except ValueError as e:
        raise KitError(
            f"template yes-no-chat: the tokenizer's chat template cannot be used ({e}). Choose a named yes-no "
            f"template instead, one of {sorted(set(ANSWER_SLOTS) - {CHAT})}."
        ) from None
    return prefix, slot, lead
