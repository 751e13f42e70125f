"""Offensive terms in class names and captions, from a maintained word list rather than one of our own.

The list is ``better-profanity``'s ``profanity_wordlist.txt`` (better-profanity 0.7, MIT licence; 916
entries, single words and phrases), read from the installed package, plus any file the user adds with
``genaudit audit --offensive-terms FILE`` (one term per line, ``#`` comments). docs/captions.md says
what such a list catches and what it does not.

Matching is whole words, case-insensitive after Unicode NFKC folding, so ``Scunthorpe`` never matches
a term inside it. A token that mixes letters with the digits or symbols people use to dodge filters
(``b1tch``, ``@ss``, ``$hit``) is also read with those characters as letters, the substitutions
better-profanity itself undoes. Phrases match as consecutive tokens, hyphens and underscores counting as
breaks (``doggy-style`` and ``doggy style`` are one term). The check is a set lookup per token and
n-gram: 42 us a caption against 11 ms for better-profanity's ``contains_profanity`` on the same list,
with the same answers on 5,000 test captions (benchmarks/terms_bench.py; benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import InputError

PACKAGE = "better-profanity"
LICENCE = "MIT (better-profanity 0.7's word list)"
MAX_TERMS_FILE_BYTES = 5_000_000
_WORD = re.compile(r"[\w@$]+", re.UNICODE)
# the character substitutions better-profanity undoes (its CHARS_MAPPING, read backwards): one reading each
_LEET = {"@": "a", "4": "a", "1": "i", "0": "o", "3": "e", "$": "s", "5": "s", "7": "t"}
_LEET_L = {**_LEET, "1": "l"}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _tokens(text: str) -> list[str]:
    """Words of ``text``: runs of letters, digits and the dodge symbols ``@`` and ``$``; anything else
    (spaces, hyphens, underscores, punctuation) is a break."""
    return [m.group() for m in _WORD.finditer(_fold(text).replace("_", " "))]


def _readings(token: str) -> set[str]:
    """The token as written and, when it mixes letters with digits or symbols, read with them as letters."""
    out = {token}
    if any(ch.isalpha() for ch in token) and any(ch in _LEET for ch in token):
        for table in (_LEET, _LEET_L):
            out.add("".join(table.get(ch, ch) for ch in token))
    return out


def _term_key(term: str) -> tuple[str, ...]:
    return tuple(_tokens(term))


@dataclass
class TermChecker:
    """Whole-word matching of a term list (see the module docstring). ``sources`` names where the terms
    came from, with their hashes, for the results' provenance."""

    terms: dict[tuple[str, ...], str]
    sources: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.longest = max((len(k) for k in self.terms), default=0)

    def find(self, text: str | None) -> list[str]:
        """The terms in ``text`` (as the list spells them), each once, in the order first met."""
        if not text or not self.terms:
            return []
        readings = [_readings(t) for t in _tokens(text)]
        found: dict[str, None] = {}
        for start in range(len(readings)):
            keys: list[tuple[str, ...]] = [()]
            for width in range(1, min(self.longest, len(readings) - start) + 1):
                keys = [(*k, r) for k in keys for r in readings[start + width - 1]][:64]
                for key in keys:
                    if key in self.terms:
                        found.setdefault(self.terms[key])
        return list(found)

    def describe(self) -> dict[str, Any]:
        return {
            "terms": len(self.terms),
            "sources": self.sources,
            "matching": "whole words, NFKC casefold, digit/symbol substitutions read as letters",
        }


def default_terms() -> tuple[list[str], dict[str, Any]]:
    """better-profanity's word list and where it came from."""
    from importlib import resources

    from audit.hashing import sha256_bytes
    from audit.provenance import package_versions

    try:
        data = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise InputError('the offensive-term check needs better-profanity: pip install "better-profanity"') from None
    version = package_versions(("better-profanity",)).get("better-profanity")
    source = {"source": f"{PACKAGE} {version} profanity_wordlist.txt", "licence": LICENCE, "sha256": sha256_bytes(data)}
    return _lines(data.decode("utf-8")), source


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_terms_file(path: str | Path) -> tuple[list[str], dict[str, Any]]:
    """A user's extra terms: UTF-8 text, one term per line, ``#`` starts a comment line."""
    from audit.hashing import sha256_bytes
    from audit.io.images import require_file

    path = Path(path)
    require_file(path, "offensive-terms file")
    size = path.stat().st_size
    if size > MAX_TERMS_FILE_BYTES:
        raise InputError(f"{path}: {size} bytes; an offensive-terms file is limited to {MAX_TERMS_FILE_BYTES}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    terms = _lines(text)
    source = {
        "source": path.name,
        "path": str(path.resolve()),
        "licence": "the user's",
        "sha256": sha256_bytes(data),
        "terms": len(terms),
    }
    return terms, source


def checker_of(described: dict[str, Any]) -> TermChecker:
    """The checker an audit used, rebuilt from its results (``offensive_terms.list``): the default list if
    it was on, and each user file from its recorded path, which must still hold the same bytes."""
    from audit.hashing import sha256_file

    sources = described.get("sources", [])
    files = [s for s in sources if "path" in s]
    for s in files:
        if not Path(s["path"]).is_file() or sha256_file(s["path"]) != s["sha256"]:
            raise InputError(f"the offensive-terms file {s['path']} the audit used is gone or changed; audit again")
    checker = term_checker([s["path"] for s in files], default=any("path" not in s for s in sources))
    if [s["sha256"] for s in checker.sources] != [s["sha256"] for s in sources]:
        raise InputError("the offensive-term list changed since the audit (another better-profanity?); audit again")
    return checker


def term_checker(extra_files: Iterable[str | Path] = (), *, default: bool = True) -> TermChecker:
    """The default list (unless ``default`` is False) plus every term in ``extra_files``."""
    terms: dict[tuple[str, ...], str] = {}
    sources = []
    lists = [default_terms()] if default else []
    lists += [read_terms_file(f) for f in extra_files]
    for words, source in lists:
        for word in words:
            key = _term_key(word)
            if key:
                terms.setdefault(key, word)
        sources.append(source)
    return TermChecker(terms, sources)
