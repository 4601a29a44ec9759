"""Keyword search over code chunks: the lexical half of the hybrid search, on an inverted index.

Text is cut into terms the way code is written (``parse_header`` and ``parseHeader`` both
give ``pars``, ``header``, plus the whole identifier ``parsehead``), each stemmed with the
Snowball English stemmer (cut back to the part the stem shares with the word), stop words
dropped. Every chunk becomes a sparse vector, term -> weight, in the keyword collection of
the vector store (:data:`KEYWORD_COLLECTION`), which Qdrant keeps as an inverted index and
scores with its IDF modifier; the query is the sparse vector of its terms, weight 1 each:

    score = Σ_t idf(t) · ( tf·(k1+1) / (tf + k1·(1 - b + b·len/AVG_TOKENS))
                           + PATH_BONUS·[t in path] + SYMBOL_BONUS·[t in symbol] )

which is the BM25 of the previous hand-written scorer with the same path and symbol boosts;
the tf part is computed here when a chunk is indexed, the idf by Qdrant at query time over
the live collection, so deletes and updates change it at once. Terms match whole (the old
scorer matched stems as substrings, so the whole identifier is indexed too, to keep
``gzipmiddlewar`` findable as one term).

Why Qdrant sparse vectors (measured with ``benchmarks/keyword_search.py``, see
docs/benchmarks.md): the previous scorer ran ``LIKE '%term%'`` over every chunk in scope,
O(n) per query (0.8 s at 4.3 k chunks on PostgreSQL). Of the candidates, Tantivy is the
fastest but a per-process index, while scaled mode needs one index seen by every API
process and worker; PostgreSQL's GIN full-text index finds the rows fast but ranks each
match by reading its tsvector from the heap, so common terms cost time linear in their
matches, and SQLite would need FTS5 with a different ranking. Qdrant is already the one
engine of both modes (qdrant-edge in-process, the server in scaled mode), its sparse index
is an inverted index with IDF kept up to date, and a deleted point takes its postings
with it. Index updates happen in ``knowledge.embed_chunks`` (:mod:`.indexing`).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

MAX_TERMS = 8
K1 = 1.2
B = 0.75
PATH_BONUS = 1.5
SYMBOL_BONUS = 1.0
#: Length normalisation needs an average chunk length; Qdrant keeps none, so a typical
#: chunk's term count (measured on site-packages code: median ~110, mean ~140) stands in.
#: A constant also keeps a chunk's vector independent of the rest of the corpus, so an
#: unchanged chunk never needs re-indexing.
AVG_TOKENS = 140.0
#: Names the tokenizer and weighting: stored with the keyword collection, so vectors made
#: by another version are never mixed in (a change needs `codeatlas reindex`).
TOKENIZER = "code-terms-bm25-v1"
#: Whole identifiers longer than this are not indexed as one term (hashes, base64 blobs).
MAX_WORD = 40

# Question words and glue of natural-language queries; code words (get, set, type…) stay.
STOP_WORDS = frozenset(
    "a about an and any are as at be been being by can could do does doing done for from had "  # noqa: SIM905
    "has have how i if in into is it its me my of on or our should so some than that the their "
    "them then there these they this those to was we were what when where which while who "
    "whom why will with would you your".split()
)
# Words in nearly every chunk of code: postings that cost time and never rank anything.
CODE_STOP_WORDS = frozenset(
    {"self", "cls", "def", "return", "none", "true", "false", "import", "elif", "else"}
    | {"pass", "not", "del", "lambda"}
)
_TOKEN = re.compile(r"[A-Za-z0-9_]+")
# camelCase parts; digits stay with the letters before them (sha256, utf8, HTTP2).
_CAMEL = re.compile(r"[A-Z]+\d*(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str | None:
    """The term of one lower-case word part, or None for a stop word or a single letter."""
    if word in STOP_WORDS or word in CODE_STOP_WORDS or len(word) < 2:
        return None
    # The stem must be a prefix of the word itself: Snowball's "verify" -> "verifi" becomes
    # "verif" (shared with "verified"), so related forms meet on one term.
    stem = _common_prefix(word, str(_stemmer().stemWord(word)))
    if len(stem) > 3 and stem.endswith("i"):
        # Snowball turns a final y into i ("verified" -> "verifi", "verify" -> "verifi"):
        # without the i both meet on "verif".
        stem = stem[:-1]
    return stem if len(stem) >= 3 else word


@lru_cache(maxsize=500_000)
def _token_terms(token: str) -> tuple[tuple[str, bool], ...]:
    """``(term, whole_identifier)`` of one token: its parts, then the identifier itself.
    Cached: code repeats its identifiers, so most tokens are seen before."""
    parts = [p.lower() for piece in token.split("_") for p in _CAMEL.findall(piece)]
    out = [(term, False) for term in map(_stem, parts) if term is not None]
    if len(parts) > 1:
        whole = "".join(parts)
        if len(whole) <= MAX_WORD:
            term = _stem(whole)
            if term is not None:
                out.append((term, True))
    return tuple(out)


def _words(text: str) -> Iterator[tuple[str, bool]]:
    for token in _TOKEN.findall(text):
        yield from _token_terms(token)


def terms(text: str) -> list[str]:
    """Every term of ``text`` in order, repeats kept (what a chunk is indexed with)."""
    return [t for t, _ in _words(text)]


def query_terms(query: str, max_terms: int = MAX_TERMS) -> list[str]:
    """Lower-case stems of the query's words and identifier parts, in order, deduplicated
    (the whole identifiers are added by :func:`encode_query`)."""
    out: list[str] = []
    for term, whole in _words(query):
        if not whole and term not in out:
            out.append(term)
    return out[:max_terms]


def term_id(term: str) -> int:
    """The sparse dimension of a term: CRC-32 of its UTF-8 bytes (Qdrant indices are u32).

    A hash instead of a vocabulary table: no shared state between processes, and a
    collision (two terms on one dimension) only merges two rare terms' postings.
    """
    return zlib.crc32(term.encode("utf-8"))


def _path_terms(path: str) -> set[str]:
    return set(terms(re.sub(r"[/.\-]", " ", path)))


def encode_document(text: str, path: str, symbol: str | None) -> tuple[list[int], list[float]]:
    """The sparse vector of one chunk: BM25 tf weight plus the path and symbol bonuses."""
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = K1 * (1.0 - B + B * length / AVG_TOKENS)
    in_path = _path_terms(path)
    in_symbol = set(terms(symbol)) if symbol else set()
    weights: dict[int, float] = {}
    for term in counts.keys() | in_path | in_symbol:
        tf = counts.get(term, 0)
        weight = tf * (K1 + 1.0) / (tf + norm) if tf else 0.0
        weight += PATH_BONUS if term in in_path else 0.0
        weight += SYMBOL_BONUS if term in in_symbol else 0.0
        index = term_id(term)
        weights[index] = max(weights.get(index, 0.0), weight)
    indices = sorted(weights)
    return indices, [round(weights[i], 4) for i in indices]


def encode_query(query: str, max_terms: int = MAX_TERMS) -> tuple[list[int], list[float]]:
    """The sparse vector of a query: its terms (and whole identifiers), weight 1 each."""
    chosen = query_terms(query, max_terms)
    chosen += [t for t, whole in _words(query) if whole and t not in chosen][:max_terms]
    indices = sorted({term_id(t) for t in chosen})
    return indices, [1.0] * len(indices)


__all__ = [
    "TOKENIZER",
    "encode_document",
    "encode_query",
    "query_terms",
    "term_id",
    "terms",
]
