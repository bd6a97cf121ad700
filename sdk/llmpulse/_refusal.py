"""Text heuristic that flags a model reply as a refusal.

Provider signals (OpenAI ``message.refusal``, ``finish_reason == "content_filter"``,
Anthropic ``stop_reason == "refusal"``) are read elsewhere; this module is the fallback
that runs on every reply without such a signal, so it is built to be cheap:

* Only a bounded head of the reply is scanned (:data:`HEAD_CHARS`). Refusals state
  themselves in the opening sentences; a refusal quoted deep inside a long answer is
  not one.
* The head is lowercased and curly apostrophes are folded to ``'`` once, so the
  patterns need neither ``re.IGNORECASE`` nor ``['’]`` classes.
* Every built-in pattern starts with a literal *head* (``"i can"``, ``"i'm "``,
  ``"as an ai"``...) that follows a space. All of them are compiled into one regex: a
  space, a trie of the heads, and at each leaf the alternatives that may follow that
  head. ``re`` jumps from space to space in C and gives up within a letter or two
  almost everywhere, which keeps an ordinary reply at a few microseconds; the same
  patterns joined into one ``re.IGNORECASE`` alternation cost over 100 µs. Where the C
  extension ``_speedups`` is built, it finds the spaces followed by a head first (a
  fraction of a microsecond) and the regex runs only there: most replies hold no head,
  and the verdicts are the same (``LLMPULSE_PURE_PYTHON=1`` turns it off).
* The rarer conditions (the phrase opens a clause, it is not inside quotation marks,
  it is not a caveat before an answer) are checked in Python on hits only.

A match must say that the assistant itself declines: "I can't help with that",
"I'm not able to provide...", "That's not something I can do", "against my
guidelines", "As an AI language model, I cannot...". Look-alikes do not match:
"I can't wait to help", "I cannot stress enough", "I can't help but notice",
"I'm sorry to hear that...", "I can't give you an exact date, but...", or a refusal
that is quoted (``the bot said "I can't help with that"``) or sits inside a code or
JSON string.

Categories (``RefusalMatch.category``) are set only when the reply says enough; the
keyword that appears first in the scanned head wins:

``unsafe``
    illegal, harmful or dangerous requests: weapons, malware, fraud, self-harm...
``privacy``
    personal or private information about someone: addresses, phone numbers...
``professional_advice``
    medical, legal, financial or tax advice, diagnoses, dosages, prescriptions.
``capability``
    what the assistant cannot do: real-time data, browsing, access to accounts...
``policy``
    guidelines, content or usage policies, terms of service, "not allowed".

``None`` means the reply declines without saying why.

Example::

    >>> detector = RefusalDetector()
    >>> detector.detect("I’m sorry, but I can’t share personal information.").category
    'privacy'
    >>> detector.detect("I can't wait to help!") is None
    True
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias

from llmpulse._config import speedup
from llmpulse._exceptions import ConfigError

__all__ = ["CATEGORIES", "DEFAULT_PATTERNS", "HEAD_CHARS", "RefusalDetector", "RefusalMatch"]

#: How many leading characters of a reply are scanned. The refusals in
#: ``tests/sdk/data/refusals.jsonl`` decline within their first ~150 characters; 400
#: leaves room for a greeting or an empathetic opening and keeps the cost flat.
HEAD_CHARS = 400

#: The categories a :class:`RefusalMatch` may carry, besides ``None``.
CATEGORIES = ("unsafe", "privacy", "professional_advice", "capability", "policy")

# --- Building blocks (over lowercased text with ’ folded to ') -------------------------

_CANT = r"(?:not|\s+not|'?t)"  # after "can": cannot, can not, can't, cant
_NOT = r"(?:n'?t|\s+not)"  # after do/could/would: don't, dont, do not
_ADV = (
    r"(?:\s+(?:really|possibly|actually|currently|directly|personally|ethically|simply"
    r"|just|unfortunately|in\s+good\s+conscience))?"
)

# What a refusal declines to do. Idioms that reuse these verbs are cut out where they
# matter: "can't help but notice", "can't help myself", "can't recommend it enough".
_VERBS = (
    r"help(?!\s+(?:but|myself|yourself|it\b|thinking|wondering|noticing|laughing|smiling"
    r"|feeling))",
    "assist",
    "provide",
    "comply",
    "fulfil+",
    r"do\s+(?:that|this|it|so|what|as\s+you)",
    "create",
    "generate",
    "write",
    "produce",
    "draft",
    "compose",
    "give",
    "share",
    "offer",
    "disclose",
    "reveal",
    "answer",
    "support",
    "engage",
    "continue",
    r"make(?!\s+it\b)",
    r"tell\s+you",
    # "I can't recommend a dosage" declines; "I can't recommend this approach" advises.
    r"recommend(?!\s+(?:this|that|it|these|those|doing|using|relying|trying)\b)"
    r"(?![^.!?\n]{0,60}\benough\b)",
    "diagnose",
    "interpret",
    "access",
    "browse",
    "open",
    "view",
    r"see\s+(?:images|attachments|pictures|photos|screenshots|files|videos)",
    "process",
    "cancel",
    "change",
    "modify",
    "schedule",
    "execute",
    r"run\s+(?:code|programs|scripts)",
    "place",
    "send",
    "predict",
    "remember",
    "check",
    "identify",
    r"look\s+up",
    r"dig\s+up",
    r"pull\s+up",
    "discuss",
    r"talk\s+about",
    r"comment\s+on",
    "speculate",
    "participate",
    r"take\s+part",
    "facilitate",
    "encourage",
    "condone",
    "endorse",
    "build",
    "develop",
    "code",
    "pretend",
    "impersonate",
    "role-?play",
    r"look\s+at",
    r"go\s+along",
    r"search\s+(?:the\s+web|the\s+internet|online)",
    "retrieve",
)
# "I can't give you an exact date, but..." hedges an answer; it does not decline.
_HEDGE = r"(?!\s+(?:you\s+|me\s+)?(?:an?\s+|the\s+)?(?:exact|precise|definitive|accurate|firm)\b)"
_V = rf"(?:{'|'.join(_VERBS)})\b{_HEDGE}"
# "I won't be helping with that", "I'm not writing that".
_V_ING = (
    r"(?:helping|assisting|providing|writing|creating|generating|producing|sharing|giving"
    r"|offering|doing|making|answering|engaging|continuing|drafting|composing|disclosing"
    r"|revealing|participating)\b"
)
# The object closes the sentence: "I'm not doing that." but not "I'm not doing that by hand".
_THAT_END = r"(?:that|this|it)(?:\s+(?:one|for\s+you))?\s*(?:[.!,;:—–)-]|$)"
_COMFORTABLE = (
    rf"comfortable\s+(?:{_V_ING}|with\s+(?:this|that|your)\s+request\b"
    rf"|with\s+{_THAT_END})"
)
_CAPABILITY = (
    r"(?:(?:the\s+)?(?:ability|capability|capacity|means)\s+to|access\s+to"
    r"|(?:real[-\s]?time|internet|web|live|browsing)\s+(?:access|data|information|capabilit))"
)

# How a pattern must sit in the text.
_Where = Literal["clause", "word"]
# "clause": it opens a clause: the start of the reply or a line, after punctuation, or
#   after a word such as "but", "sorry", "unfortunately". That is what separates
#   "Sorry, I can't help with that" from "the bot said I can't help with that".
# "word": it starts a word.

_IM = ("i'm ", "i am ", "im ")

# (heads, tail, where): the pattern is "(?:head|head...)tail". Heads are literal text that
# starts a word, and no head may be a prefix of another (the search tells which head it
# saw by a group at the trie's leaf, so a head inside another would hide it).
_SPECS: tuple[tuple[tuple[str, ...], str, _Where], ...] = (
    (("i can",), rf"{_CANT}(?:\s*,?\s+and\s+(?:will\s+not|won'?t))?{_ADV}\s+{_V}", "clause"),
    (("i could",), rf"{_NOT}{_ADV}\s+{_V}", "clause"),
    (("i won",), rf"'?t(?:(?:\s+be\s+able\s+to)?{_ADV}\s+{_V}|\s+be\s+{_V_ING})", "clause"),
    (("i will ",), rf"not(?:\s+be\s+able\s+to)?{_ADV}\s+{_V}", "clause"),
    (
        _IM,
        rf"(?:(?:also|really|just|simply|currently)\s+)?"
        rf"(?:not\s+able|unable|not\s+in\s+a\s+position)\s+to{_ADV}\s+{_V}",
        "clause",
    ),
    (_IM, rf"not\s+(?:going\s+to|gonna)\s+(?:be\s+able\s+to\s+)?{_V}", "clause"),
    (_IM, r"not\s+(?:allowed|permitted|authori[sz]ed)\s+to\b", "clause"),
    (_IM, rf"not\s+(?:programmed|designed|built|trained)\s+to\s+{_V}", "clause"),
    (_IM, rf"not\s+{_V_ING}\s+{_THAT_END}", "clause"),
    (_IM, rf"(?:not\s+|un){_COMFORTABLE}", "clause"),
    (
        (*_IM, "i will ", "i'll ", "i must ", "i have to ", "i need to "),
        r"(?:going\s+to\s+|gonna\s+)?(?:have\s+to\s+)?(?:respectfully\s+|politely\s+)?"
        r"(?:decline\b|pass\s+on\s+(?:this|that)\b|say\s+no\b|sit\s+(?:this|that)\s+one\s+out\b)",
        "clause",
    ),
    (("i decline", "i respectfully decline", "i politely decline"), r"\b", "clause"),
    (("i refuse ",), rf"(?:to\s+{_V}|(?:this|that|your)\s+request)", "clause"),
    (
        ("i must ", "i will ", "i have to "),
        rf"refuse\s+(?:to\s+{_V}|(?:this|that|your)\s+request)",
        "clause",
    ),
    (("i'd ",), rf"(?:rather|prefer)\s+not(?:\s+to)?\s+{_V}", "clause"),
    (
        ("i would",),
        rf"(?:\s+(?:rather|prefer)\s+not(?:\s+to)?\s+{_V}"
        rf"|{_NOT}\s+(?:be\s+able\s+to{_ADV}\s+{_V}|(?:share|disclose|reveal|provide|help"
        r"|assist)\b))",
        "clause",
    ),
    (
        ("i do",),
        rf"{_NOT}\s+(?:think\s+(?:that\s+)?i\s+(?:should|can|could)\s+{_V}"
        rf"|think\s+(?:that'?s|this\s+is|it'?s)\s+(?:something|a\s+request|a\s+question)"
        rf"\s+(?:that\s+)?i\s+(?:should|can|could)\s+{_V}"
        rf"|feel\s+{_COMFORTABLE}|have\s+{_CAPABILITY}"
        # A standing rule, "I don't provide instructions for...": fewer verbs than _V,
        # since "I don't remember" or "I don't recommend" are not refusals.
        r"|(?:provide|engage|create|generate|write|produce|assist|facilitate|condone|disclose"
        r"|discuss|share|give\s+(?:out|advice|instructions)|help\s+(?:with|people|anyone)"
        r"|answer\s+questions)\b)",
        "clause",
    ),
    (("i lack ",), _CAPABILITY, "clause"),
    (
        ("we're ", "we are "),
        rf"(?:not\s+able|unable|not\s+(?:allowed|permitted))\s+to\s+{_V}",
        "clause",
    ),
    (
        ("as an ai",),
        rf"(?:\s+(?:language\s+model|assistant|model|chatbot|system))?\s*,?\s+i"
        rf"(?:\s+can{_CANT}|\s+won'?t|\s+will\s+not|(?:'|\s+a)?m\s+(?:not|unable)\b"
        rf"|\s+do{_NOT}\s+have\b"
        # "As an AI, I don't have personal opinions, but..." is a disclaimer before an answer.
        r"(?!\s+(?:any\s+)?(?:personal\s+)?(?:opinions?|feelings?|preferences?|emotions?"
        r"|beliefs?|experiences?)))",
        "clause",
    ),
    # "Sorry, can't help with that one!", "not gonna help with that"
    (("not gonna ", "not going to "), rf"(?:be\s+able\s+to\s+)?{_V}", "clause"),
    (
        ("can't help", "cant help", "cannot help", "can't assist", "cannot assist"),
        r"\s+(?:with|you)\b",
        "clause",
    ),
    # That's not / this isn't / it is not something I can (do, help with). The head is
    # "something" so that it follows a space; look-behinds check the negation before it.
    (
        ("something",),
        r"(?:(?<=(?:n't|not|snt) something)|(?<=(?:n't|not|snt) really something))"
        r"\s+(?:that\s+)?i(?:\s+can|\s+will|'ll|\s+could"
        r"|(?:'m|\s+am)\s+(?:able|allowed|permitted|comfortable))\b",
        "word",
    ),
    # "a request I can't fulfill", "something I'm unable to help with".
    (
        ("something", "request", "question", "topic", "task"),
        rf"\s+(?:that\s+)?i\s+(?:can{_CANT}|won'?t|will\s+not|(?:should|could){_NOT}"
        rf"|(?:'m|\s+am)\s+(?:not\s+able|unable|not\s+(?:allowed|permitted))\s+to)"
        rf"{_ADV}\s+{_V}",
        "word",
    ),
    (("off-limits", "off limits"), r"\s+for\s+me\b", "word"),
    (("hard no",), r"\b(?!-)", "word"),
    (
        ("outside ",),
        r"(?:of\s+)?(?:what\s+i\b|the\s+scope\s+of\s+what\s+i\b"
        r"|my\s+(?:scope|capabilit|abilit|expertise|remit))",
        "word",
    ),
    (("beyond ",), r"(?:what\s+i\s+can|my\s+(?:capabilit|abilit|scope))", "word"),
    (
        ("against my ",),
        r"(?:\w+\s+)?(?:guidelines|polic|programming|principles|rules|values|ethic)",
        "word",
    ),
    (("against the ",), r"(?:\w+\s+)?(?:guidelines|polic\w*|rules)\s+(?:that\s+)?i\b", "word"),
    (
        ("violat",),
        r"(?:e|es|ing)\s+(?:\S+\s+){0,2}?(?:content|usage|use|safety|acceptable[-\s]use)\s+polic",
        "word",
    ),
    (
        ("my guidelines", "my policies", "my programming", "my instructions", "my rules"),
        rf"\s+(?:do{_NOT}\s+(?:allow|permit|let)|prevent|prohibit|forbid)",
        "word",
    ),
    (
        ("wouldn't be ", "wouldnt be ", "would not be "),
        r"(?:appropriate|right|ethical|responsible|okay|ok|safe)\s+for\s+me\s+to\b",
        "word",
    ),
    (("no can do",), r"\b", "word"),
)


def _pattern(heads: Sequence[str], tail: str) -> str:
    return f"(?:{'|'.join(re.escape(h) for h in heads)}){tail}"


#: The built-in English patterns, as regular expressions over lowercased text with
#: curly apostrophes folded to ``'``. Passing them as ``patterns=`` keeps the phrases
#: but drops the clause and quotation rules that only the built-in set applies.
DEFAULT_PATTERNS: tuple[str, ...] = tuple(_pattern(heads, tail) for heads, tail, _ in _SPECS)


_Trie: TypeAlias = "dict[str, _Trie]"


def _trie_regex(words: Mapping[str, str]) -> tuple[str, list[str]]:
    """One regex matching any key of ``words`` followed by its value (a regex).

    The keys are factored by shared prefixes: ``re`` tries alternatives one by one, and
    a trie makes each step a choice on one character. No key may be a prefix of another.
    Also returns the keys in the order the regex spells them out.
    """
    trie: _Trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
    order: list[str] = []

    def emit(node: _Trie, prefix: str) -> str:
        if not node:
            order.append(prefix)
            return words[prefix]
        alternatives = [re.escape(char) + emit(child, prefix + char) for char, child in sorted(node.items())]
        return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"

    return emit(trie, ""), order


class _Compiled(NamedTuple):
    """The built-in set compiled. ``search`` finds any head with one of its tails; group i
    wraps the tails of ``group_heads[i]`` (so ``m.lastindex`` names the head); ``by_head``
    holds, per head, the full patterns to tell apart on a hit. ``find_head(scan, pos)``
    (compiled, or None) gives the first space at or after ``pos`` followed by a head, or -1:
    every match of ``search`` starts at one. ``find_in_reply(text, HEAD_CHARS)`` (compiled,
    or None) is ``find_head`` on the scan ``detect`` would build from ``text``, without
    building it: -1 means no head, so no built-in pattern matches (-2: not known)."""

    search: re.Pattern[str]
    group_heads: tuple[str, ...]
    by_head: dict[str, list[tuple[re.Pattern[str], _Where]]]
    find_head: Callable[[str, int], int] | None
    find_in_reply: Callable[[str, int], int] | None


_COMPILE_LOCK = threading.Lock()


@functools.cache
def _compiled() -> _Compiled:
    """Compiled on first use, on the exporter's thread: the combined search is a ~40 KB
    regex and compiling the set costs ~100 ms, which ``import llmpulse`` must not pay.
    ``init`` starts that on a warm-up thread; the lock keeps a first span processed
    meanwhile from compiling it a second time (functools.cache does not)."""
    with _COMPILE_LOCK:
        return _build()


@functools.cache
def _build() -> _Compiled:
    tails: dict[str, list[str]] = {}
    by_head: dict[str, list[tuple[re.Pattern[str], _Where]]] = {}
    for heads, tail, where in _SPECS:
        # No capturing groups in the tails: the search numbers one group per head (tested).
        compiled = re.compile(_pattern(heads, tail))
        for head in heads:
            tails.setdefault(head, []).append(tail)
            by_head.setdefault(head, []).append((compiled, where))
    # The leading space gives the search a literal prefix: re then jumps from space to
    # space in C (2-3 µs over 400 characters) instead of trying the heads at every letter
    # that starts one (8 µs); the compiled Heads scan finds the spaces followed by a head
    # in ~0.5 µs, and the regex then runs only there. detect() prepends a space and blanks
    # newlines, tabs and markdown asterisks in the text it scans, so a head at the start,
    # after a line break or inside **bold** still follows a space.
    search, order = _trie_regex({head: "(" + "|".join(f"(?:{t})" for t in ts) + ")" for head, ts in tails.items()})
    scanner = speedup("Heads", order)  # None: the regex scans every space
    return _Compiled(
        re.compile(" " + search),
        ("", *order),
        by_head,
        None if scanner is None else scanner.find,
        None if scanner is None else scanner.find_in_reply,
    )


# "I can't access the internet, but based on my training data..." and "I don't have
# access to your calendar, but here's a template" state a limit and then answer. Only
# capability claims get this reading: "I can't write that, but here's an outline" still
# declines what was asked.
_CAPABILITY_WORDS = frozenset(
    (
        *("access", "browse", "browsing", "real-time", "realtime", "internet", "web", "see"),
        *("view", "open", "look", "check", "remember", "ability", "capability", "capabilities"),
    )
)
_ANSWER_FOLLOWS = re.compile(
    r"[^.!?\n]*?,?\s+but\s+(?:here(?:'s|\s+is|\s+are)|based\s+on|as\s+of|according\s+to"
    r"|generally|typically|usually|in\s+general|from\s+what|my\s+(?:training|knowledge)"
    r"|i\s+can\s+(?:tell|give|share|suggest|explain|walk|offer))"
)

# Words after which a new clause may start without punctuation ("but I can't",
# "I'm afraid I can't", "Unfortunately I'm unable").
_CLAUSE_WORDS = frozenset(
    (
        *("but", "however", "so", "and", "though", "although", "yet", "still", "then", "now"),
        *("afraid", "unfortunately", "sadly", "regrettably", "alas", "honestly"),
        *("sorry", "apologies", "apologize", "hmm", "well", "ok", "okay", "yes", "yeah"),
        *("no", "nah", "hey", "oh", "ah", "lol", "ugh"),
    )
)
_CLAUSE_PUNCT = frozenset(".!?;:,()[]—–…")
_SKIP_BEFORE = frozenset(" \t\r*_>#-")  # spaces and markdown (bold, quote, bullet) markers

# Keywords start after a space (see _SEARCH for why a literal space); run on matches only.
_CATEGORY_RE = re.compile(
    r" (?:"
    r"(?P<unsafe>illegal\w*|unlawful|harm(?:ful|s|ing)?\b|hurt(?:ing)?\s+(?:yourself|someone"
    r"|others|people|themselves)|self[-\s]harm|suicid\w*|overdos\w*|danger\w*|weapons?"
    r"|explosives?|bombs?|firearms?|guns?|violen\w*|kill\w*|murder\w*|poison\w*|malware"
    r"|ransomware|keyloggers?|hack\w*|crack\w*|phishing|scams?|fraud\w*|forg(?:ery|ed|e)\b"
    r"|crimes?|criminal|drugs?|methamphetamine|narcotics|terror\w*|abus\w*|harass\w*"
    r"|hate\b|hateful|stalk\w*|extremis\w*|exploit\w*|ddos)"
    r"|(?P<privacy>privacy|private\s+(?:individuals?|information|data|details|citizens?"
    r"|persons?|people|messages|life)|personal\s+(?:information|data|details|contact|info)"
    r"|personally\s+identifiable|pii\b|home\s+address|(?:phone|social\s+security)\s+numbers?"
    r"|contact\s+details|email\s+address|confidential\w*|dox\w*"
    r"|someone\s+else'?s\s+(?:account|data|information)|another\s+(?:person|user|customer)"
    r"|other\s+(?:customers|users|patients|people)'?s?\s+(?:order|data|information|records"
    r"|details))"
    r"|(?P<professional_advice>(?:medical|legal|financial|tax|investment|health"
    r"|professional|clinical|psychological|personali[sz]ed(?:\s+financial)?)\s+advice"
    r"|diagnos\w*|dosages?|prescri\w*|treatment\s+plans?|licensed\s+(?:attorney|lawyer"
    r"|physician|doctor|professional|financial\s+advisor|therapist))"
    r"|(?P<capability>real[-\s]?time|live\s+(?:data|prices?|information)|brows(?:e|ing)"
    r"|the\s+internet|internet\s+access|web\s+access|(?:do(?:n'?t|\s+not)\s+have|lack)\s+"
    r"(?:access|the\s+ability|the\s+capability|the\s+means)|can(?:not|'?t)\s+access"
    r"|(?:make|place)\s+(?:phone\s+)?calls|send\s+(?:texts|emails|messages)|set\s+"
    r"(?:reminders|alarms)|open\s+(?:links|attachments|files|urls)|view\s+(?:attachments"
    r"|images|files)|see\s+(?:images|attachments|pictures|photos|screenshots)"
    r"|execute\s+code|run\s+(?:code|programs|scripts)|remember\s+(?:previous|past|earlier)"
    r"|previous\s+conversations|make\s+purchases|place\s+orders|process\s+refunds)"
    r"|(?P<policy>guidelines?|polic(?:y|ies)|terms\s+of\s+(?:service|use)|programming"
    r"|not\s+(?:allowed|permitted)|(?:my|our)\s+(?:rules|principles))"
    r")"
)

# A custom pattern with a back-reference is matched on its own: joining patterns into
# one alternation shifts group numbers.
_BACKREF = re.compile(r"\\[1-9]|\(\?P=")


@dataclass(frozen=True, slots=True)
class RefusalMatch:
    """Why :meth:`RefusalDetector.detect` judged a reply to be a refusal.

    Attributes:
        category: one of :data:`CATEGORIES`, or ``None`` when the reply does not say why.
        pattern: the regular expression that matched, for debugging and explanations.
    """

    category: str | None
    pattern: str


class RefusalDetector:
    """Flags replies that decline the request, from their wording alone.

    Build one per configuration and reuse it: patterns are compiled here, and
    :meth:`detect` keeps no state, so one detector can serve many threads.

    Args:
        patterns: ``None`` uses the built-in English set (:data:`DEFAULT_PATTERNS`);
            a sequence of regular expressions replaces it. Custom patterns are searched
            case-insensitively (:func:`re.search` semantics, anchor them yourself) in the
            first :data:`HEAD_CHARS` characters, with curly apostrophes folded to ``'``;
            any match counts.
        extra_patterns: regular expressions searched in addition to ``patterns``.

    Raises:
        ConfigError: a pattern is not a valid regular expression or is empty, or a
            single string was passed instead of a sequence. The message names the
            option ``refusal_patterns`` and the bad pattern.

    Example::

        >>> detector = RefusalDetector(extra_patterns=[r"^nope\\b"])
        >>> detector.detect("Nope, not doing that.").pattern
        '^nope\\\\b'
    """

    __slots__ = ("_builtin", "_custom", "_custom_parts")

    def __init__(self, patterns: Sequence[str] | None = None, *, extra_patterns: Sequence[str] = ()) -> None:
        self._builtin = patterns is None
        self._custom_parts = (
            *_compile_custom(patterns, "patterns"),
            *_compile_custom(extra_patterns, "extra_patterns"),
        )
        self._custom = _join(self._custom_parts)

    def detect(self, text: str) -> RefusalMatch | None:
        """Return a :class:`RefusalMatch` if ``text`` reads as a refusal, else ``None``.

        Only the first :data:`HEAD_CHARS` characters are read, so the cost does not grow
        with the length of the reply.
        """
        if not text:
            return None
        start = 0  # where the scan below can hold the first head
        if self._builtin and not self._custom_parts:
            find_in_reply = _compiled().find_in_reply
            if find_in_reply is not None:
                start = find_in_reply(text, HEAD_CHARS)
                if start == -1:
                    return None  # no head in the scanned head of the reply (most replies)
                start = max(start, 0)  # -2: not known without building the scan
        window = text[:HEAD_CHARS].replace("’", "'")
        # A leading space lets heads and keywords at the very start follow a space too.
        lowered = " " + window.lower()
        scan = _blank(lowered)
        found = _search_builtin(lowered, scan, start) if self._builtin else None
        if found is None and self._custom_parts:
            found = _search_custom(self._custom, self._custom_parts, window)
        if found is None:
            return None
        category = _CATEGORY_RE.search(scan)
        return RefusalMatch(category.lastgroup if category else None, found)

    def warm_up(self) -> None:
        """Compile the built-in patterns now (they compile on first use otherwise)."""
        if self._builtin:
            _compiled()

    def __repr__(self) -> str:
        builtin = "built-in patterns" if self._builtin else "no built-in patterns"
        return f"<RefusalDetector {builtin}, {len(self._custom_parts)} custom>"


def _compile_custom(patterns: Sequence[str] | None, option: str) -> list[re.Pattern[str]]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        raise ConfigError(
            f"refusal_patterns: {option} must be a sequence of regular expressions, not the "
            f"single string {patterns!r}; wrap it in a list"
        )
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(
                f"refusal_patterns: {pattern!r} in {option} is not a non-empty string; "
                "an empty pattern would flag every reply as a refusal"
            )
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(
                f"refusal_patterns: {pattern!r} in {option} is not a valid regular expression ({exc}); fix or remove it"
            ) from exc
    return compiled


def _join(parts: Sequence[re.Pattern[str]]) -> re.Pattern[str] | None:
    # One alternation is cheaper than a search per pattern. When joining would change a
    # pattern's meaning (back-references) or fails (global inline flags such as (?x)
    # mid-pattern, a group name used twice), the patterns are searched one by one.
    if not parts or any(_BACKREF.search(p.pattern) for p in parts):
        return None
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in parts), re.IGNORECASE)
    except re.error:
        return None


def _blank(lowered: str) -> str:
    # Same length and positions as `lowered`; str.replace is a C scan when the character
    # is absent, which is the usual case, and cheaper than str.translate.
    for char in "\n\t\r*":
        if char in lowered:
            lowered = lowered.replace(char, " ")
    return lowered


def _search_builtin(lowered: str, scan: str, pos: int = 0) -> str | None:
    # Patterns match on `scan` so "I'm\nnot able" still fits the literal "i'm " head; the
    # clause and caveat rules read `lowered`, where line breaks are still visible.
    search, group_heads, by_head, find_head, _ = _compiled()
    while True:
        if find_head is None:
            hit = search.search(scan, pos)
            if hit is None:
                return None
        else:
            pos = find_head(scan, pos)
            if pos < 0:
                return None
            hit = search.match(scan, pos)
            if hit is None:
                pos += 1
                continue
        start = hit.start() + 1  # past the space
        for pattern, where in by_head.get(group_heads[hit.lastindex or 0], ()):
            m = pattern.match(scan, start)
            if (
                m is not None
                and _sits_right(lowered, start, where)
                and not _inside_quotes(lowered, start)
                and not _is_caveat(lowered, m)
            ):
                return pattern.pattern
        pos = start


def _search_custom(combined: re.Pattern[str] | None, parts: Sequence[re.Pattern[str]], window: str) -> str | None:
    if combined is not None:
        m = combined.search(window)
        if m is None:
            return None
        # Report the first pattern matching where the alternation did (re tries
        # alternatives in order, so that is the one that matched).
        for part in parts:
            if part.match(window, m.start()):
                return part.pattern
    for part in parts:
        if part.search(window):
            return part.pattern
    return None


def _sits_right(text: str, start: int, where: _Where) -> bool:
    if where == "word":
        return not text[start - 1].isalnum()
    j = start
    while j and text[j - 1] in _SKIP_BEFORE:
        j -= 1
    if j == 0 or text[j - 1] == "\n" or text[j - 1] in _CLAUSE_PUNCT:
        return True
    if not text[j - 1].isalpha():
        return False  # a quote, apostrophe or digit: "said 'I can't help...'"
    k = j
    while k and text[k - 1].isalpha():
        k -= 1
    return text[k:j] in _CLAUSE_WORDS


def _is_caveat(text: str, m: re.Match[str]) -> bool:
    return not _CAPABILITY_WORDS.isdisjoint(m.group().split()) and _ANSWER_FOLLOWS.match(text, m.end()) is not None


def _inside_quotes(text: str, start: int) -> bool:
    # Straight quotes and backticks pair up, so an odd count before the match means it
    # sits in a quotation, a string literal or a code span. Single quotes cannot be told
    # from apostrophes and are left to the clause rule.
    before = text[:start]
    if before.count('"') % 2 or before.count("`") % 2:
        return True
    return before.rfind("“") > before.rfind("”")
