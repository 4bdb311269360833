"""Text helpers: Simplified Chinese output, language codes, joining sentence texts."""

from __future__ import annotations

import functools
import re

__all__ = ["to_simplified", "is_chinese", "join_texts", "has_cjk", "normalize_language"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@functools.lru_cache(maxsize=1)
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters in ``text`` to Simplified ones."""
    if not text or not _CJK.search(text):
        return text
    return _converter().convert(text)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text or ""))


def is_chinese(language: str | None) -> bool:
    return (language or "").lower().split("-")[0] in ("zh", "yue", "cmn")


def normalize_language(language: str | None) -> str | None:
    """Map a requested language (``auto``, ``''``, ``None``, ``zh-CN``, ``EN``) to an ISO code or None."""
    if language is None:
        return None
    lang = language.strip().lower().replace("_", "-")
    if lang in ("", "auto", "detect"):
        return None
    base = lang.split("-")[0]
    return {"cmn": "zh", "chinese": "zh", "english": "en", "mandarin": "zh"}.get(base, base)


def join_texts(texts: list[str]) -> str:
    """Join sentence texts: no space between CJK sentences, one space otherwise."""
    out = ""
    for t in (t.strip() for t in texts):
        if not t:
            continue
        if out and not (has_cjk(out[-1]) or _is_cjk_punct(out[-1])) or (out and not has_cjk(t[0])):
            out += " " + t
        else:
            out += t
    return out


def _is_cjk_punct(ch: str) -> bool:
    return ch in "，。！？；：、“”‘’（）《》"
