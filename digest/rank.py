"""Ranking: pure numpy from vectors + profile + votes to scored, explained, diverse picks.

Nothing here touches the store or the model: callers pass vectors in. Every score comes with a reason built
from the same numbers (the facet or seed or liked paper that matched, matched keywords and authors).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from .models import Paper, ScoredPaper
from .profiles import Profile

DEFAULT_FLOOR = 0.30
KEYWORD_BOOST = 0.08
AUTHOR_BOOST = 0.12
DISLIKE_PENALTY = 0.6
RECENCY_BONUS = 0.03  # at most, for a paper published today, fading over a month


@dataclass(frozen=True)
class Anchor:
    """One thing a user told us they care about (or not): a facet, a seed paper, a voted paper."""

    kind: str  # 'facet' | 'seed' | 'liked' | 'disliked'
    label: str
    weight: float = 1.0


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
    return UserSignals(tuple(anchors), np.asarray(vectors, dtype=np.float32).reshape(len(anchors), -1),
                       profile.boost_keywords, profile.boost_authors, profile.mute_keywords, profile.mute_authors)


def _phrase_in(phrase: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text) is not None


def _author_match(wanted: str, authors: Sequence[str]) -> bool:
    """'Yann LeCun' matches 'Yann LeCun' and Scholar's 'Y LeCun': same surname and compatible initial."""
    w = wanted.lower().split()
    for author in authors:
        a = author.lower().replace(".", " ").split()
        if not a or not w or a[-1] != w[-1]:
            continue
        if len(a) == 1 or len(w) == 1 or a[0][0] == w[0][0]:
            return True
    return False


@dataclass(frozen=True)
class Ranking:
    picked: list[ScoredPaper]
    scored: list[ScoredPaper] = field(default_factory=list)  # every candidate, best first
    floor: float = DEFAULT_FLOOR


def score_papers(signals: UserSignals, cand_vecs: np.ndarray, papers: Sequence[Paper],
                 today: date | None = None) -> list[ScoredPaper]:
    """Score every candidate (same order as ``papers``)."""
    if not papers:
        return []
    sims = cand_vecs @ signals.vectors.T if len(signals.anchors) else np.zeros((len(papers), 0))
    weights = np.array([a.weight for a in signals.anchors], dtype=np.float32)
    pos = signals.rows("facet", "seed", "liked")
    neg = signals.rows("disliked")
    out = []
    for i, paper in enumerate(papers):
        details: dict = {}
        reasons = []
        score = 0.0
        facet = None
        if len(pos):
            weighted = sims[i, pos] * np.minimum(weights[pos], 1.0) + 0.05 * (weights[pos] - 1.0)
            best = int(pos[int(np.argmax(weighted))])
            score = float(weighted.max())
            anchor = signals.anchors[best]
            details["match"] = {"kind": anchor.kind, "label": anchor.label, "similarity": round(float(sims[i, best]), 3)}
            if anchor.kind == "facet":
                facet = anchor.label
                reasons.append(f"matches your interest “{anchor.label}” ({sims[i, best]:.2f})")
            else:
                what = "a paper you liked" if anchor.kind == "liked" else "your seed paper"
                reasons.append(f"close to {what} “{anchor.label}” ({sims[i, best]:.2f})")
        if len(neg):
            worst = int(neg[int(np.argmax(sims[i, neg]))])
            penalty = DISLIKE_PENALTY * max(0.0, float(sims[i, worst]) - 0.5)
            if penalty > 0:
                score -= penalty
                details["dislike"] = {"label": signals.anchors[worst].label, "penalty": round(penalty, 3)}
                reasons.append(f"lowered: like “{signals.anchors[worst].label}”, which you marked 👎")
        text = f"{paper.title} {paper.abstract or paper.snippet or ''}".lower()
        kws = [k for k in signals.boost_keywords if _phrase_in(k, text)]
        aus = [a for a in signals.boost_authors if _author_match(a, paper.authors)]
        if kws:
            score += KEYWORD_BOOST * len(kws)
            reasons.append("mentions " + ", ".join(f"“{k}”" for k in kws))
        if aus:
            score += AUTHOR_BOOST * len(aus)
            reasons.append("by " + ", ".join(aus))
        muted = [k for k in signals.mute_keywords if _phrase_in(k, text)] + \
                [a for a in signals.mute_authors if _author_match(a, paper.authors)]
        if muted:
            details["muted"] = muted
            score = -1.0
            reasons = ["muted: " + ", ".join(muted)]
        if today and paper.published:
            try:
                age = (today - date.fromisoformat(paper.published[:10])).days
                score += RECENCY_BONUS * max(0.0, 1 - max(age, 0) / 30)
            except ValueError:
                pass
        details["score"] = round(score, 4)
        reason = "; ".join(reasons) if reasons else "no strong match"
        out.append(ScoredPaper(paper, round(score, 4), reason[0].upper() + reason[1:], facet, details))
    return out


def select(scored: Sequence[ScoredPaper], cand_vecs: np.ndarray, max_items: int, floor: float,
           diversity: float = 0.25) -> list[ScoredPaper]:
    """Maximal marginal relevance over the candidates that clear the floor, so one hot topic cannot fill the
    digest: each next pick maximises score - diversity * (similarity to what is already picked)."""
    eligible = [i for i, s in enumerate(scored) if s.score >= floor]
    picked: list[int] = []
    while eligible and len(picked) < max_items:
        if picked:
            redundancy = (cand_vecs[eligible] @ cand_vecs[picked].T).max(axis=1)
        else:
            redundancy = np.zeros(len(eligible))
        values = np.array([scored[i].score for i in eligible]) - diversity * redundancy
        best = eligible.pop(int(np.argmax(values)))
        picked.append(best)
    return [scored[i] for i in picked]


def rank(signals: UserSignals, cand_vecs: np.ndarray, papers: Sequence[Paper], *, max_items: int,
         floor: float | None = None, today: date | None = None,
         background_vecs: np.ndarray | None = None) -> Ranking:
    """The production ranking path: score every candidate, then pick a diverse best set above the floor."""
    floor = DEFAULT_FLOOR if floor is None else floor
    scored = score_papers(signals, cand_vecs, papers, today=today)
    picked = select(scored, cand_vecs, max_items, floor)
    order = sorted(range(len(scored)), key=lambda i: -scored[i].score)
    return Ranking(picked, [scored[i] for i in order], floor)
