"""Ranking: pure numpy from vectors + profile + votes to scored, explained, diverse picks.

Nothing here touches the store or the model: callers pass vectors in. Every score comes with a reason built
from the same numbers (the facet or seed or liked paper that matched, matched keywords and authors).

The score scale
---------------
Every signal is calibrated against the *background*: random papers of the same store (``background_vecs``),
i.e. "the rest of the world" for this user. A candidate's ``z`` is how many standard deviations its combined
relevance lies above the background papers' mean, for this user; the public score is ``z / 10``, so

* ``score = 0.0`` is an average random paper, ``0.2`` is two background sigmas above it (roughly the top
  2-3% of random papers: about ten of a daily listing of a few hundred, a digest's worth), ``0.3`` three
  sigmas (the top ~0.5%), ``0.5`` five sigmas (near-duplicates of a seed). A profile's ``relevance_floor`` (0..1) is on this scale, so the
  same floor lets through about the same share of papers for every user, whatever their raw similarities.
* keyword / author boosts and recency are added in the same units (sigmas / 10); a mute removes the paper.

First, the cosines to seed and voted papers are corrected for hubness (CSLS): a paper's mean cosine to its
``HUB_K`` nearest background papers, times ``HUB_WEIGHT``, is subtracted, so a generic title that is close to
everything does not look close to every seed. Facets are left as they are: on a plain-words description the
correction demoted the user's own field, which is dense in a store of their own alerts (benchmarks/README.md,
round 8).

The combined relevance is a weighted sum of two channels, each z-scored against the background first:

* ``knn``: per-anchor z-scores (a candidate's cosine to an anchor, standardised by the background's cosines
  to that same anchor, so short facet texts and long seed titles count alike); facets count one at a time
  (the best-matching facet, by weight: facets are separate interests), seeds and liked papers by the mean of
  their best few; the better of the two (each standardised against the background) is the channel;
* ``classifier``: a per-user logistic regression on embeddings, positives (seeds, liked, facets) against the
  background plus thumbs-down papers; the background's own scores come from 2-fold out-of-fold fits, so the
  calibration is not flattered by training on it. Its weight grows with the user's votes (``CLF_GROWTH``).

A thumbs-down lowers candidates close to it (a near-duplicate drops by several sigmas) and is a hard negative
for the classifier, so it counts at the next ranking.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from .models import Paper, ScoredPaper, unaccented
from .profiles import Profile

SCALE = 10.0            # public score = z / SCALE
DEFAULT_FLOOR = 0.20    # two background sigmas: ~top 2-3%, i.e. ~10 of a few hundred candidates
KEYWORD_BOOST = 0.10    # per matched keyword (one sigma)
AUTHOR_BOOST = 0.15     # per matched author
RECENCY_BONUS = 0.03    # at most, for a paper published today, fading over a month
MUTED_SCORE = -99.0     # JSON-able stand-in for "never show"
STRONG_Z = 2.0          # an anchor this many sigmas above the background counts as a strong match in a reason
WEAK_Z = 1.0            # below this, the nearest anchor is no match worth naming (about a sixth of random papers)

# channel weights and shapes, tuned on the static/online CiteULike protocols with --seed 1 (benchmarks/README.md)
W_KNN = 1.0
W_CLASSIFIER = 1.0
KNN_TOP = 3             # average the best KNN_TOP positive anchors (fewer when there are fewer)
CLASSIFIER_C = 1.0
DISLIKE_WEIGHT = 3.0    # a thumbs-down counts as this many background negatives
DISLIKE_START = 3.0     # a candidate closer than this (anchor z) to a thumbs-down is pushed down...
DISLIKE_SLOPE = 1.0     # ...by this much per sigma beyond it, in combined-z units
W_LEXICAL = 0.0         # the TF-IDF channel (needs background texts); measured: hurts here, so off
HUB_WEIGHT = 0.9        # hubness correction: minus this times a paper's mean cosine to its HUB_K nearest background,
HUB_K = 10              # on the cosines to seed and voted papers (online +0.005 on seed 2, benchmarks/README.md round 8)
NEG_KNN_WEIGHT = 0.0    # examples channel minus this times the top-k anchor z to thumbs-down papers
LIKED_WEIGHT = 1.0      # a thumbs-up's weight among the classifier's positives (a seed counts 1)
PRF_WEIGHT = 0.5        # pseudo-relevance feedback: weight of the similarity to today's PRF_TOP best candidates
PRF_TOP = 20
PRF_FRAC = 0.1          # the PRF centroid takes this share of the candidates, at most PRF_TOP (100 -> 10, 400 -> 20)
C_GROWTH = 0.0          # classifier C grows by this per labelled (voted) paper: trust the data as it comes
NEG_KNN_MIN = 1         # the negative-kNN term applies only from this many thumbs-down on
LIKED_KNN_BONUS = 0.0   # a thumbs-up anchor's z gets this many sigmas on top in the kNN (liked above seeds)
CLF_GROWTH = 0.05       # classifier channel weight grows by this per voted paper (W_CLASSIFIER + CLF_GROWTH * votes):
                        # the more labels, the more the learned boundary is trusted (online +0.004 on seed 2)
MIN_BACKGROUND = 30     # below this many background rows, fall back to PRIOR_* for the anchor calibration
PRIOR_MEAN, PRIOR_STD = 0.05, 0.10   # cosine of random title pairs with all-MiniLM-L6-v2
MIN_STD = 1e-3


@dataclass(frozen=True)
class Anchor:
    """One thing a user told us they care about (or not): a facet, a seed paper, a voted paper."""

    kind: str  # 'facet' | 'seed' | 'liked' | 'disliked'
    label: str
    weight: float = 1.0
    source: str = ""  # 'library' for a seed from the profile's library file (it only changes the reason's words)


@dataclass(frozen=True)
class UserSignals:
    anchors: tuple[Anchor, ...]
    vectors: np.ndarray  # one row per anchor
    boost_keywords: tuple[str, ...] = ()
    boost_authors: tuple[str, ...] = ()
    mute_keywords: tuple[str, ...] = ()
    mute_authors: tuple[str, ...] = ()

    def rows(self, *kinds: str) -> np.ndarray:
        return np.array([i for i, a in enumerate(self.anchors) if a.kind in kinds], dtype=int)


def build_signals(profile: Profile, anchors: Sequence[Anchor], vectors: np.ndarray) -> UserSignals:
    """The anchors with one vector row each. No anchors at all (a votes-only state that lost its votes, a test)
    is allowed: such a user ranks nothing above the floor instead of crashing."""
    vecs = np.asarray(vectors, dtype=np.float32)
    if not anchors:
        vecs = vecs.reshape(0, vecs.shape[-1] if vecs.ndim == 2 else 0)
    else:
        vecs = vecs.reshape(len(anchors), -1)
    return UserSignals(tuple(anchors), vecs,
                       profile.boost_keywords, profile.boost_authors, profile.mute_keywords, profile.mute_authors)


def _fold(text: str) -> str:
    """Lower case without accents: "Schrödinger" and "Schrodinger" are one word to a keyword."""
    return unaccented(text).casefold()


@functools.lru_cache(maxsize=1024)
def _phrase_pattern(phrase: str) -> re.Pattern:
    """Whole words, the last one also in the plural ("KV cache" finds "KV caches"); a space or a hyphen between
    words matches either ("KV-cache", "KV cache")."""
    words = [w for w in re.split(r"[\s\-\u2010\u2011]+", _fold(phrase)) if w]
    if not words:
        return re.compile(r"(?!)")
    body = r"[\s\-\u2010\u2011]*".join(map(re.escape, words))
    plural = "(?:e?s)?" if words[-1][-1:].isalpha() else ""
    return re.compile(rf"(?<!\w){body}{plural}(?!\w)")


def _phrase_in(phrase: str, text: str) -> bool:
    """``text`` (folded by ``_fold``) contains the keyword ``phrase``."""
    return _phrase_pattern(phrase).search(text) is not None


_SUFFIXES = {"jr", "sr", "ii", "iii", "iv"}
_PUBMED_INITIALS = re.compile(r"[A-Z]{1,3}")  # PubMed and Scopus write "Prates AC": surname, then initials


def _name_keys(name: str) -> list[tuple[str, str]]:
    """(surname, first initial) of an author however the source writes them: "Yann LeCun", "Y. LeCun",
    Scholar's "Y LeCun", PubMed's "LeCun Y", BibTeX's "LeCun, Yann", "Schölkopf" or "Scholkopf", "Jr." left
    out. The surname is its last word ("Laurens van der Maaten" -> maaten), so particles may come or go.
    Two readings where the name may be either: PubMed's "LeCun Y" or a surname in capitals ("Wei LI")."""
    text = unaccented(name)
    readings: list[tuple[str, str]] = []
    if "," in text:
        surname, _, given = text.partition(",")
        readings.append((surname, " ".join(w for w in given.replace(",", " ").split()
                                            if w.strip(".").lower() not in _SUFFIXES)))
    else:
        words = [w for w in text.split() if w.strip(".").lower() not in _SUFFIXES] or text.split()
        if len(words) >= 2 and _PUBMED_INITIALS.fullmatch(words[-1]) and not words[0].isupper():
            readings.append((" ".join(words[:-1]), words[-1]))
        readings.append((" ".join(words[-1:]), " ".join(words[:-1])))
    keys = []
    for surname, given in readings:
        surname_words = surname.lower().replace(".", " ").split()
        initial = re.search(r"\w", given)
        keys.append((surname_words[-1] if surname_words else "", initial[0].lower() if initial else ""))
    return keys


def author_match(wanted: str, authors: Sequence[str]) -> bool:
    """'Yann LeCun' (or 'LeCun, Yann') matches 'Yann LeCun', Scholar's 'Y LeCun' and PubMed's 'LeCun Y': the
    same surname and, when both give one, the same first initial."""
    wanted_keys = [key for key in _name_keys(wanted) if key[0]]
    for author in authors:
        for surname, initial in _name_keys(author):
            if any(surname == w_surname and (not initial or not w_initial or initial == w_initial)
                   for w_surname, w_initial in wanted_keys):
                return True
    return False


@dataclass(frozen=True)
class Ranking:
    picked: list[ScoredPaper]
    scored: list[ScoredPaper] = field(default_factory=list)  # every candidate, best first
    floor: float = DEFAULT_FLOOR
    max_items: int | None = None  # the most papers ``select`` could pick
    min_similarity: float | None = None  # the loose-match bar (None: not applied; see hold_loose)

    def cleared(self) -> list[ScoredPaper]:
        """The candidates ``select`` may pick: at or above the floor, not muted, not a loose match; best first."""
        return [s for s in self.scored if _eligible(s, self.floor)]

    def loose(self) -> list[ScoredPaper]:
        """The papers that cleared the floor but were held back as loose matches (see hold_loose)."""
        return [s for s in self.scored if "loose" in s.details]

    def runners_up(self, limit: int) -> list[ScoredPaper]:
        """The best ``limit`` papers that cleared the floor but found no room in the digest."""
        picked = {id(s) for s in self.picked}
        return [s for s in self.cleared() if id(s) not in picked][:limit]

    def below(self, limit: int) -> list[ScoredPaper]:
        """The best ``limit`` papers below the floor or held back as loose matches (muted ones left out): what
        the reader would see next, to look through and vote on (a 👍 there teaches the ranking what it missed)."""
        return [s for s in self.scored if MUTED_SCORE < s.score and "muted" not in s.details
                and (s.score < self.floor or "loose" in s.details)][:limit]


def _eligible(s: ScoredPaper, floor: float) -> bool:
    """What ``select`` may pick: at or above the floor, not muted, not held back as a loose match."""
    return s.score >= floor and "muted" not in s.details and "loose" not in s.details


@dataclass(frozen=True)
class _Channels:
    """The numbers behind every score, for candidates (and the background they were calibrated on)."""

    anchor_z: np.ndarray        # candidates x anchors: per-anchor background z-scores
    anchor_sim: np.ndarray      # candidates x anchors: raw cosines (for the reasons)
    knn: np.ndarray             # examples (seeds, liked) kNN, per candidate, background-standardised
    facet: np.ndarray           # best weighted facet match, background-standardised
    by_facet: np.ndarray        # per candidate: the facet channel beat the examples channel
    classifier: np.ndarray | None
    penalty: np.ndarray         # dislike penalty, combined-z units
    lexical: np.ndarray | None
    z: np.ndarray               # final calibrated relevance before boosts
    prf: np.ndarray | None = None  # similarity to the centroid of today's best candidates, background-standardised


def _standardise(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (values - reference.mean()) / max(float(reference.std()), MIN_STD)


def _weighted(z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Anchor weights: below 1 shrink the z; above 1 lift a match by half a sigma per unit (a facet weighted 2
    wins ties), in full from a strong match (STRONG_Z) on and fading to nothing at the background's mean, so a
    facet weighted 5 lifts its own papers, not every paper (a flat lift made it the best match of papers it
    barely resembles, and their reason)."""
    lift = 0.5 * np.maximum(weights - 1.0, 0.0) * np.clip(z / STRONG_Z, 0.0, 1.0)
    return z * np.minimum(weights, 1.0) + lift


def _knn(zw: np.ndarray) -> np.ndarray:
    if zw.shape[1] == 0:
        return np.zeros(zw.shape[0])
    k = min(KNN_TOP, zw.shape[1])
    top = -np.partition(-zw, k - 1, axis=1)[:, :k]
    return top.mean(axis=1)


def _pooled(zw: np.ndarray, pool) -> np.ndarray:
    return pool(zw) if zw.shape[1] else np.zeros(zw.shape[0])


def _best(zw: np.ndarray) -> np.ndarray:
    return zw.max(axis=1)


_HUB_CACHE: dict[tuple, np.ndarray] = {}


def _background_hubness(bg: np.ndarray) -> np.ndarray:
    """_hubness of every background paper among the others. The background is the same for every user of a day
    (and every call of a benchmark), so it is computed once per background, not once per ranking."""
    key = (HUB_K, bg.shape, hashlib.blake2b(np.ascontiguousarray(bg).tobytes(), digest_size=16).digest())
    hubness = _HUB_CACHE.get(key)
    if hubness is None:
        bg_bg = bg @ bg.T
        np.fill_diagonal(bg_bg, -1.0)
        hubness = _hubness(bg_bg)
        if len(_HUB_CACHE) >= 4:
            _HUB_CACHE.clear()
        _HUB_CACHE[key] = hubness
    return hubness


def _hubness(sims: np.ndarray) -> np.ndarray:
    """Each row's mean cosine to its HUB_K nearest background papers, itself not counted: in production the
    background is a sample of the same store, so a candidate may be in it (or a copy of it, same text)."""
    sims = np.where(sims > 0.9999, -1.0, sims)
    k = min(HUB_K, sims.shape[1])
    return -np.partition(-sims, k - 1, axis=1)[:, :k].mean(axis=1)


def _fit_classifier(pos: np.ndarray, pos_w: np.ndarray, neg: np.ndarray, neg_w: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    w = np.r_[pos_w, neg_w].astype(np.float64)
    # balance the classes by weight, so five seeds against a thousand background papers still matter
    w[: len(pos)] *= w[len(pos):].sum() / max(w[: len(pos)].sum(), 1e-9)
    model = LogisticRegression(C=c, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, sample_weight=w)
    return model


def _classifier_channel(signals: UserSignals, cand: np.ndarray, bg: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-user logistic regression; returns (candidate scores, out-of-fold background scores)."""
    # seeds and liked papers only: facet descriptions are another genre of text than titles and abstracts,
    # and they have their own channel
    pos_rows = signals.rows("seed", "liked")
    if len(pos_rows) == 0 or len(bg) < MIN_BACKGROUND:
        return None
    weights = np.array([a.weight for a in signals.anchors], dtype=np.float64)
    pos, pos_w = signals.vectors[pos_rows], weights[pos_rows]
    pos_w = pos_w * np.where([signals.anchors[i].kind == "liked" for i in pos_rows], LIKED_WEIGHT, 1.0)
    dis_rows = signals.rows("disliked")
    dis, dis_w = signals.vectors[dis_rows], weights[dis_rows] * DISLIKE_WEIGHT
    c = CLASSIFIER_C * (1.0 + C_GROWTH * (len(signals.rows("liked")) + len(dis_rows)))
    full = _fit_classifier(pos, pos_w, np.vstack([bg, dis]), np.r_[np.ones(len(bg)), dis_w], c)
    cand_scores = full.decision_function(cand)
    # out-of-fold background scores: each half is scored by a model that never saw it
    order = rng.permutation(len(bg))
    halves = (order[: len(bg) // 2], order[len(bg) // 2:])
    bg_scores = np.empty(len(bg))
    for held, train in (halves, halves[::-1]):
        model = _fit_classifier(pos, pos_w, np.vstack([bg[train], dis]), np.r_[np.ones(len(train)), dis_w], c)
        bg_scores[held] = model.decision_function(bg[held])
    return cand_scores, bg_scores


def _lexical_channel(signals: UserSignals, cand_texts: Sequence[str],
                     background_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """TF-IDF cosine to the weighted centroid of the positive anchors' texts (their labels), for candidates and
    background; the IDF comes from the background plus the candidates, i.e. this user's world today."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    pos = signals.rows("facet", "seed", "liked")
    if len(pos) == 0 or W_LEXICAL == 0:
        return None
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    try:
        matrix = vectorizer.fit_transform(list(background_texts) + list(cand_texts))
    except ValueError:  # nothing but stop words
        return None
    weights = np.array([signals.anchors[i].weight for i in pos])
    centroid = vectorizer.transform([signals.anchors[i].label for i in pos]).T @ weights
    scores = np.asarray(matrix @ centroid).ravel()
    return scores[len(background_texts):], scores[: len(background_texts)]


def compute_channels(signals: UserSignals, cand_vecs: np.ndarray, background_vecs: np.ndarray | None = None,
                     cand_texts: Sequence[str] | None = None,
                     background_texts: Sequence[str] | None = None) -> _Channels:
    """The calibrated relevance of every candidate (see the module docstring), as pure numpy."""
    cand = np.asarray(cand_vecs, dtype=np.float32)
    n = len(cand)
    anchors = signals.vectors
    bg = np.zeros((0, cand.shape[1] if cand.ndim == 2 else 0), dtype=np.float32) if background_vecs is None \
        else np.asarray(background_vecs, dtype=np.float32)
    sims = cand @ anchors.T if len(signals.anchors) else np.zeros((n, 0), dtype=np.float32)
    raw_sims = sims  # what the reasons show: the plain cosine, before the hubness correction
    if len(bg) >= MIN_BACKGROUND:
        bg_sims = bg @ anchors.T if len(signals.anchors) else np.zeros((len(bg), 0), dtype=np.float32)
        if HUB_WEIGHT:
            # papers close to everything (generic titles) look close to every seed too: discount them (CSLS)
            # (papers' anchors only: on a facet, a plain-words description, it demoted the user's own field,
            # dense in their store; benchmarks/README.md round 8)
            cols = np.array([a.kind != "facet" for a in signals.anchors], dtype=np.float32)
            sims = sims - HUB_WEIGHT * _hubness(cand @ bg.T)[:, None] * cols
            bg_sims = bg_sims - HUB_WEIGHT * _background_hubness(bg)[:, None] * cols
        mu, sd = bg_sims.mean(axis=0), np.maximum(bg_sims.std(axis=0), MIN_STD)
    else:
        bg_sims = None
        mu, sd = np.full(len(signals.anchors), PRIOR_MEAN), np.full(len(signals.anchors), PRIOR_STD)
    anchor_z = (sims - mu) / sd
    weights = np.array([a.weight for a in signals.anchors], dtype=np.float32)
    neg = signals.rows("disliked")

    facets, examples = signals.rows("facet"), signals.rows("seed", "liked")
    bg_z = (bg_sims - mu) / sd if bg_sims is not None else None

    # the examples channel: seeds and liked papers are samples of one taste (kNN top-k + classifier)
    liked_bonus = np.array([LIKED_KNN_BONUS if signals.anchors[i].kind == "liked" else 0.0 for i in examples],
                           dtype=np.float32)
    knn_c = _pooled(_weighted(anchor_z[:, examples], weights[examples]) + liked_bonus, _knn)
    facet_c = _pooled(_weighted(anchor_z[:, facets], weights[facets]), _best)
    classifier = None
    by_facet = np.zeros(n, dtype=bool)
    if bg_z is None:
        knn, facet_z, comb_b = knn_c, facet_c, None
        comb_c = W_KNN * knn
        if len(facets):
            by_facet = facet_c > comb_c if len(examples) else np.ones(n, dtype=bool)
            comb_c = np.maximum(comb_c, facet_c) if len(examples) else facet_c
    else:
        knn_b = _pooled(_weighted(bg_z[:, examples], weights[examples]) + liked_bonus, _knn)
        knn = _standardise(knn_c, knn_b)
        ex_c, ex_b = W_KNN * knn, W_KNN * _standardise(knn_b, knn_b)
        if NEG_KNN_WEIGHT and len(neg) >= max(NEG_KNN_MIN, 1):
            # shown-but-disliked papers sit in the very region the user likes: closeness to them is evidence
            neg_c, neg_b = _knn(anchor_z[:, neg]), _knn(bg_z[:, neg])
            ex_c = ex_c - NEG_KNN_WEIGHT * _standardise(neg_c, neg_b)
            ex_b = ex_b - NEG_KNN_WEIGHT * _standardise(neg_b, neg_b)
        # a fixed seed keeps a ranking reproducible: the same inputs give the same scores
        fitted = _classifier_channel(signals, cand, bg, np.random.default_rng(0))
        if fitted is not None:
            classifier = _standardise(fitted[0], fitted[1])
            w_clf = W_CLASSIFIER + CLF_GROWTH * (len(signals.rows("liked")) + len(neg))
            ex_c = ex_c + w_clf * classifier
            ex_b = ex_b + w_clf * _standardise(fitted[1], fitted[1])
        # facets are separate interests: a paper counts by the one it matches best, never an average of them
        facet_b = _pooled(_weighted(bg_z[:, facets], weights[facets]), _best)
        facet_z = _standardise(facet_c, facet_b)
        if len(examples) and len(facets):
            # each channel on the background's scale, then the better one: either kind of match can win alone
            by_facet = facet_z > _standardise(ex_c, ex_b)
            comb_c = np.maximum(_standardise(ex_c, ex_b), facet_z)
            comb_b = np.maximum(_standardise(ex_b, ex_b), _standardise(facet_b, facet_b))
        elif len(facets):
            by_facet = np.ones(n, dtype=bool)
            comb_c, comb_b = facet_z, _standardise(facet_b, facet_b)
        else:
            comb_c, comb_b = ex_c, ex_b

    lexical = None
    if comb_b is not None and cand_texts is not None and background_texts is not None \
            and len(background_texts) >= MIN_BACKGROUND:
        fitted_lex = _lexical_channel(signals, cand_texts, background_texts)
        if fitted_lex is not None:
            lexical = _standardise(fitted_lex[0], fitted_lex[1])
            comb_c = comb_c + W_LEXICAL * lexical
            comb_b = comb_b + W_LEXICAL * _standardise(fitted_lex[1], fitted_lex[1])

    def dislike_penalty(z: np.ndarray | None) -> np.ndarray:
        if z is None or len(neg) == 0:
            return np.zeros(0 if z is None else len(z))
        closest = (z[:, neg] * np.minimum(weights[neg], 1.0)).max(axis=1)
        return DISLIKE_SLOPE * np.maximum(closest - DISLIKE_START, 0.0)

    # (only for days with more than PRF_TOP candidates, as before; PRF_FRAC can shrink the centroid's share)
    prf_top = min(PRF_TOP, max(3, round(PRF_FRAC * n))) if PRF_FRAC > 0 else PRF_TOP
    prf = None
    if PRF_WEIGHT and comb_b is not None and n > PRF_TOP:
        # today's best candidates, as one pseudo-anchor: papers close to what already scores highest today
        top = np.argpartition(-comb_c, prf_top - 1)[:prf_top]
        centroid = cand[top].mean(axis=0)
        prf_c, prf_b = cand @ centroid, bg @ centroid
        prf = _standardise(prf_c, prf_b)
        comb_c = comb_c + PRF_WEIGHT * prf * comb_b.std()
        comb_b = comb_b + PRF_WEIGHT * _standardise(prf_b, prf_b) * comb_b.std()

    penalty = dislike_penalty(anchor_z)
    comb_c = comb_c - (penalty if len(penalty) else 0.0)
    if comb_b is not None:
        pen_b = dislike_penalty(bg_z)
        comb_b = comb_b - (pen_b if len(pen_b) else 0.0)
        z = _standardise(comb_c, comb_b)
    else:
        z = comb_c
    return _Channels(anchor_z, raw_sims, knn, facet_z, by_facet, classifier, penalty, lexical=lexical, z=z, prf=prf)


def _recency(paper: Paper, today: date | None) -> float:
    if not (today and paper.published):
        return 0.0
    try:
        age = (today - date.fromisoformat(paper.published[:10])).days
    except ValueError:
        return 0.0
    return RECENCY_BONUS * max(0.0, 1 - max(age, 0) / 30)


_ANCHOR_WORDS = {"facet": "your interest", "seed": "your seed paper", "library": "a paper in your library",
                 "liked": "a paper you liked"}


def score_papers(signals: UserSignals, cand_vecs: np.ndarray, papers: Sequence[Paper],
                 today: date | None = None, background_vecs: np.ndarray | None = None,
                 background_texts: Sequence[str] | None = None) -> list[ScoredPaper]:
    """Score every candidate (same order as ``papers``) on the calibrated scale of the module docstring."""
    if not papers:
        return []
    ch = compute_channels(signals, cand_vecs, background_vecs, [p.text for p in papers], background_texts)
    weights = np.array([a.weight for a in signals.anchors], dtype=np.float32)
    pos = signals.rows("facet", "seed", "liked")
    neg = signals.rows("disliked")
    facets = signals.rows("facet")
    examples = signals.rows("seed", "liked")
    out = []
    for i, paper in enumerate(papers):
        details: dict = {"z": round(float(ch.z[i]), 3), "knn_z": round(float(ch.knn[i]), 3)}
        if len(facets):
            details["facet_z"] = round(float(ch.facet[i]), 3)
        if ch.classifier is not None:
            details["classifier_z"] = round(float(ch.classifier[i]), 3)
        if ch.lexical is not None:
            details["lexical_z"] = round(float(ch.lexical[i]), 3)
        reasons = []
        weak = ""
        facet = None
        if len(facets):
            # the facet this paper belongs to (for the per-facet quota), even when a seed matched it better
            f = int(facets[int(np.argmax(_weighted(ch.anchor_z[i, facets], weights[facets])))])
            facet = signals.anchors[f].label
            details["facet"] = {"label": facet, "similarity": round(float(ch.anchor_sim[i, f]), 3),
                                "anchor_z": round(float(ch.anchor_z[i, f]), 2)}
        if len(pos):
            # the reason names the anchor of the channel that carried the score: the facet, or the closest example
            rows = facets if ch.by_facet[i] or not len(examples) else examples
            best = int(rows[int(np.argmax(_weighted(ch.anchor_z[i, rows], weights[rows])))])
            anchor = signals.anchors[best]
            sim = float(ch.anchor_sim[i, best])
            details["match"] = {"kind": anchor.kind, "label": anchor.label, "similarity": round(sim, 3),
                                "anchor_z": round(float(ch.anchor_z[i, best]), 2)}
            if ch.anchor_z[i, best] < WEAK_Z:
                # as close to it as a random paper: no "matches" or "close to" claim (said after the boosts,
                # and only when nothing else carried the paper), and "nearest" means nearest, not weighted
                near = signals.anchors[int(rows[int(np.argmax(ch.anchor_sim[i, rows]))])]
                weak = f"{_ANCHOR_WORDS[near.kind if near.source != 'library' else 'library']}" \
                       f" “{near.label}”, {float(ch.anchor_sim[i, rows].max()):.2f}"
            elif anchor.kind == "facet":
                reasons.append(f"matches your interest “{anchor.label}” ({sim:.2f})")
                # the interest named is the one the paper stands out for against the background (z), which
                # need not be the one it is closest to: a generic interest is close to many papers. When the
                # closest also counts as a strong match, say so, or the lower number looks like a mistake
                closest = int(facets[int(np.argmax(ch.anchor_sim[i, facets]))])
                if closest != best and ch.anchor_z[i, closest] >= STRONG_Z:
                    also = signals.anchors[closest]
                    details["also"] = {"label": also.label, "similarity": round(float(ch.anchor_sim[i, closest]), 3),
                                       "anchor_z": round(float(ch.anchor_z[i, closest]), 2)}
                    reasons.append(f"also your interest “{also.label}” ({ch.anchor_sim[i, closest]:.2f})")
            else:
                if anchor.kind == "liked":
                    reasons.append(f"close to a paper you liked “{anchor.label}” ({sim:.2f})")
                elif anchor.source == "library":
                    reasons.append(f"close to “{anchor.label}” in your library ({sim:.2f})")
                else:
                    reasons.append(f"close to your seed paper “{anchor.label}” ({sim:.2f})")
                if facet is not None and details["facet"]["anchor_z"] >= STRONG_Z:
                    reasons.append(f"in your interest “{facet}”")
        score = float(ch.z[i]) / SCALE
        if len(neg) and ch.penalty[i] > 0:
            worst = int(neg[int(np.argmax(ch.anchor_z[i, neg]))])
            details["dislike"] = {"label": signals.anchors[worst].label,
                                  "similarity": round(float(ch.anchor_sim[i, worst]), 3),
                                  "penalty": round(float(ch.penalty[i]) / SCALE, 4)}
            reasons.append(f"lowered: like “{signals.anchors[worst].label}”, which you marked 👎")
        text = _fold(f"{paper.title} {paper.abstract or paper.snippet or ''}")
        kws = [k for k in signals.boost_keywords if _phrase_in(k, text)]
        aus = [a for a in signals.boost_authors if author_match(a, paper.authors)]
        if kws:
            score += KEYWORD_BOOST * len(kws)
            details["keywords"] = kws
            reasons.append("mentions " + ", ".join(f"“{k}”" for k in kws))
        if aus:
            score += AUTHOR_BOOST * len(aus)
            details["authors"] = aus
            reasons.append("by " + ", ".join(aus))
        recency = _recency(paper, today)
        if recency:
            score += recency
            details["recency"] = round(recency, 4)
        muted = [k for k in signals.mute_keywords if _phrase_in(k, text)] + \
                [a for a in signals.mute_authors if author_match(a, paper.authors)]
        if muted:
            details["muted"] = muted
            score = MUTED_SCORE
            reasons = ["muted: " + ", ".join(muted)]
        if not math.isfinite(score):
            score = MUTED_SCORE
        details["score"] = round(score, 4)
        reason = "; ".join(reasons) if reasons else f"no strong match (nearest: {weak})" if weak else "no strong match"
        out.append(ScoredPaper(paper, round(score, 4), reason[0].upper() + reason[1:], facet, details))
    return out


def select(scored: Sequence[ScoredPaper], cand_vecs: np.ndarray, max_items: int, floor: float,
           diversity: float = 0.05) -> list[ScoredPaper]:
    """The best candidates above the floor, diverse.

    First every facet that has an eligible candidate gets its best one (best facets first, as long as there is
    room), so one hot topic cannot crowd out a niche facet; then maximal marginal relevance fills the rest:
    each next pick maximises score - diversity * (cosine to the closest paper already picked). Nothing above
    the floor gives an empty list: the quiet-day outcome.
    """
    eligible = [i for i, s in enumerate(scored) if _eligible(s, floor)]
    eligible.sort(key=lambda i: -scored[i].score)
    picked: list[int] = []
    seen_facets: set[str] = set()
    for i in eligible:
        facet = scored[i].facet
        if facet is not None and facet not in seen_facets and len(picked) < max_items:
            seen_facets.add(facet)
            picked.append(i)
    eligible = [i for i in eligible if i not in picked]
    vecs = np.asarray(cand_vecs, dtype=np.float32)
    while eligible and len(picked) < max_items:
        if picked:
            redundancy = (vecs[eligible] @ vecs[picked].T).max(axis=1)
        else:
            redundancy = np.zeros(len(eligible))
        values = np.array([scored[i].score for i in eligible]) - diversity * redundancy
        picked.append(eligible.pop(int(np.argmax(values))))
    picked.sort(key=lambda i: -scored[i].score)
    return [scored[i] for i in picked]


def hold_loose(signals: UserSignals, scored: list[ScoredPaper], cand_vecs: np.ndarray, bar: float,
               floor: float) -> None:
    """Mark the papers that clear ``floor`` but are loose matches: no interest, seed or liked paper of the
    reader's is at cosine ``bar`` or closer (``reference.similarity_bar``: as close as one pair in ten of random
    papers of all fields).

    Scores are calibrated against the store, so in a store that holds nothing of the reader's field the floor
    still lets its top 2-3% through: the least unrelated papers of other fields, at similarities a tenth of
    random pairs reach. A paper with a boosted keyword or author is the reader's own ask and never held back.
    (Measured on CiteULike: of the library papers in a 5-seed top 10, 1 in ~1,000 is held back; over ten days of
    votes 1-3%, nearly all for readers whose libraries are bestselling books; benchmarks/README.md, round 17.)"""
    pos = signals.rows("facet", "seed", "liked")
    # only a paper that clears the floor can be held back: the rest need no product with every anchor (a
    # library's thousands of seeds against a day's candidates)
    above = [i for i, s in enumerate(scored) if s.score >= floor]
    if floor <= 0 or not len(pos) or not above:
        return
    closest = (np.asarray(cand_vecs, dtype=np.float32)[above] @ signals.vectors[pos].T).max(axis=1)
    for i, near in zip(above, closest, strict=True):
        s = scored[i]
        s.details["closest"] = round(float(near), 3)
        if near < bar and "muted" not in s.details and not ("keywords" in s.details or "authors" in s.details):
            s.details["loose"] = True
            scored[i] = ScoredPaper(s.paper, s.score, f"{s.reason}; held back: a loose match (nothing you named "
                                    f"is closer than {near:.2f}; a pick needs {bar:.2f})", s.facet, s.details)


def rank(signals: UserSignals, cand_vecs: np.ndarray, papers: Sequence[Paper], *, max_items: int,
         floor: float | None = None, today: date | None = None,
         background_vecs: np.ndarray | None = None, background_texts: Sequence[str] | None = None,
         min_similarity: float | None = None) -> Ranking:
    """The production ranking path: score every candidate, then pick a diverse best set above the floor.

    ``floor`` is on the calibrated scale (a profile's ``relevance_floor``); ``background_vecs`` are random
    papers of the store to calibrate against (without them, the anchors fall back to a fixed prior and the
    classifier channel is off); ``background_texts`` (the same papers' texts) turn on the TF-IDF channel;
    ``min_similarity`` holds back loose matches (``hold_loose``): it changes which papers may be picked, never
    a score.
    """
    floor = DEFAULT_FLOOR if floor is None else floor
    scored = score_papers(signals, cand_vecs, papers, today=today, background_vecs=background_vecs,
                          background_texts=background_texts)
    if min_similarity is not None:
        hold_loose(signals, scored, cand_vecs, min_similarity, floor)
    picked = select(scored, cand_vecs, max_items, floor)
    order = sorted(range(len(scored)), key=lambda i: -scored[i].score)
    return Ranking(picked, [scored[i] for i in order], floor, max_items, min_similarity)
