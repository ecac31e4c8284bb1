"""The main job, wired from the pure parts: ingest -> embed -> rank -> render -> deliver.

Each step takes its resources (store, embedder, settings) as arguments; the CLI, the scheduler and the
tests call these functions. One user's failure never stops the others.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path

import numpy as np

from .config import Secret, Settings
from .embed import Embedder, cached_vectors, embed_missing
from .errors import DeliveryError, DigestError, ParseError, ProfileError
from .models import (
    Paper,
    ScoredPaper,
    Vote,
    matches_query,
    normalise_arxiv_id,
    normalise_doi,
    normalise_title,
)
from .profiles import LoadedProfiles, Profile, display_path, load_profiles, local_period
from .rank import Anchor, Ranking, build_signals, rank
from .reference import similarity_bar
from .render import item_context, render_digest
from .send import build_message, send_message, write_outbox
from .store import DIGEST_DONE, MAX_UNCONFIRMED, Store, database_problem, describe_owner, is_lock
from .tokens import link_path, make_token

log = logging.getLogger(__name__)


# -- ingest ------------------------------------------------------------------------------------------------
@dataclass
class IngestReport:
    emails: int = 0
    alerts: int = 0
    not_alerts: int = 0
    duplicates: int = 0
    failed: int = 0
    new: int = 0
    merged: int = 0
    feedback: int = 0  # votes sent by email and recorded
    feedback_rejected: int = 0  # feedback replies refused (wrong sender, bad token, no votes), recorded as such
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # mails read, but not whole (cut short)
    unread: list[str] = field(default_factory=list)  # not alerts by what was read, but they read like one

    def add(self, other: IngestReport) -> None:
        for name in ("emails", "alerts", "not_alerts", "duplicates", "failed", "new", "merged", "feedback",
                     "feedback_rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)
        self.unread.extend(other.unread)


def ingest_raw(store: Store, raw: bytes, *, mailbox: str, uidvalidity: int = 0, uid: int = 0,
               label: str = "", settings: Settings | None = None,
               received_at: datetime | None = None) -> tuple[str, IngestReport]:
    """Parse one message and record it with its papers in one transaction.

    Returns the message's status ('ingested', 'not_alert', 'duplicate' or 'failed') and the counts.
    A message already ingested under the same Message-ID (another folder, a new UIDVALIDITY) adds nothing,
    unless this copy holds more papers than the one read before (that one was cut short).

    With ``settings`` (the poller passes them), a vote sent by email is recognised first and never parsed
    as an alert: status 'feedback' (votes recorded) or 'feedback_rejected' (recorded with the reason, e.g. a
    wrong sender). Both are final: mark the message processed like 'ingested'. See feedback.handle_reply;
    ``received_at`` (when the mail server received it) places its votes among the reader's other votes.
    """
    from .parse import parse_message  # parsing needs no model: keep torch out of this import path

    report = IngestReport(emails=1)
    if uid:
        seen = store.message_seen(mailbox, uidvalidity, uid)
        if seen and seen["status"] in ("ingested", "not_alert", "duplicate", "feedback", "feedback_rejected"):
            report.duplicates = 1
            return "seen", report
    if settings is not None:
        from .feedback import handle_reply

        outcome = handle_reply(store, settings, raw, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid,
                               received_at=received_at)
        if outcome is not None and outcome.status == "duplicate":
            store.record_message(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid,
                                 message_id=outcome.message_id, kind="feedback", status="duplicate")
            report.duplicates = 1
            return "duplicate", report
        if outcome is not None:
            report.feedback, report.feedback_rejected = (1, 0) if outcome.status == "feedback" else (0, 1)
            return outcome.status, report
    try:
        parsed = parse_message(raw)
    except ParseError as exc:
        report.failed = 1
        report.errors.append(f"{label or mailbox}: {exc}")
        store.record_message(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, message_id=None, status="failed",
                             error=str(exc))
        return "failed", report
    if parsed.kind is None:
        report.not_alerts = 1
        note = "; ".join(parsed.warnings) or None  # it reads like an alert of a layout no parser knows
        store.record_message(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, message_id=parsed.message_id,
                             subject=parsed.subject, sender=parsed.sender, status="not_alert", error=note)
        if note:
            report.unread.append(f"{label or mailbox}: {note}")
            store.log_event("WARNING", "poll" if uid else "ingest", f"{label or mailbox}: {note}")
        return "not_alert", report
    earlier = store.message_by_message_id(parsed.message_id) if parsed.message_id else None
    if earlier is not None and (len(parsed.papers) > (earlier["n_papers"] or 0)
                                or (earlier["error"] and not parsed.warnings)):
        # a fuller copy of a message read before (the earlier one was cut short: a broken mbox, a truncated
        # download; it may hold as many papers, one of them cut): its papers are stored too, known ones merge
        log.info("%s: a fuller copy of message %s (%d papers; the copy read before gave %d)", label or mailbox,
                 parsed.message_id, len(parsed.papers), earlier["n_papers"] or 0)
    elif earlier is not None:
        report.duplicates = 1
        store.record_message(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, message_id=parsed.message_id,
                             subject=parsed.subject, sender=parsed.sender, kind=parsed.kind, status="duplicate",
                             error="; ".join(parsed.warnings) or None)  # a cut copy completes nothing
        return "duplicate", report
    # the papers a fuller copy adds are as old as the message: an old mail read again (a new folder, a better
    # parser) does not put last month's papers into today's candidates
    _, outcome = store.record_message(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid,
                                      message_id=parsed.message_id, subject=parsed.subject, sender=parsed.sender,
                                      kind=parsed.kind, status="ingested", papers=parsed.papers,
                                      first_seen=earlier["received_at"] if earlier is not None else None,
                                      error="; ".join(parsed.warnings) or None)
    report.alerts, report.new, report.merged = 1, outcome.new, outcome.merged
    report.warnings += [f"{label or mailbox}: {w}" for w in parsed.warnings]  # the caller shows or logs them
    return "ingested", report


def ingest_paths(store: Store, paths: Iterable[Path], settings: Settings | None = None) -> IngestReport:
    """Ingest .eml files, mboxes, Maildirs or folders of them (local files: the mailbox is 'file:<path>').

    With ``settings``, a vote sent by email (a reply to a digest) among them is recorded, as the poller does."""
    from .parse import NO_EMAIL, iter_raw_messages

    total = IngestReport()
    for path in paths:
        if not path.exists():
            total.errors.append(f"{path}: no such file or folder")
            total.failed += 1
            continue
        found = 0
        for label, raw in iter_raw_messages(path):
            found += 1
            # local files have no IMAP UID: a hash of the content stands in, so re-reading a file is a no-op
            pseudo_uid = int(hashlib.sha256(raw).hexdigest()[:12], 16)
            _, report = ingest_raw(store, raw, mailbox=f"file:{label}", uid=pseudo_uid, label=label,
                                   settings=settings)
            total.add(report)
        if not found:
            total.errors.append(f"{path}: {NO_EMAIL}")
    return total


# -- embed -------------------------------------------------------------------------------------------------
def embed_papers(store: Store, embedder: Embedder, papers: Sequence[Paper],
                 progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Vectors for papers (rows in order), embedding only those whose text the store has not seen."""
    return cached_vectors(store, embedder, [p.text for p in papers], progress)


def candidate_since(settings: Settings, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return (now - timedelta(days=settings.ranking.candidate_days)).isoformat(timespec="seconds")


def embed_new(store: Store, embedder: Embedder, settings: Settings,
              progress: Callable[[int, int], None] | None = None, *,
              should_stop: Callable[[], bool] | None = None) -> tuple[int, int]:
    """Embed every recent paper once (whatever the number of users), ahead of the digests that rank them.

    Returns (embedded now, how many had no vector): fewer when ``should_stop()`` said stop between chunks (the
    rest is embedded by the next call, or by the digest that needs it); ``progress(done, total)`` follows the
    work (see ``embed.cached_vectors``)."""
    papers = [p for _, p in store.papers_since(candidate_since(settings))]
    return embed_missing(store, embedder, [p.text for p in papers], should_stop=should_stop, progress=progress)


# -- rank --------------------------------------------------------------------------------------------------
@dataclass
class UserRanking:
    profile: Profile
    ranking: Ranking
    paper_ids: dict[int, str]  # id(ScoredPaper.paper) -> stable id
    n_candidates: int
    notes: list[str] = field(default_factory=list)

    def id_of(self, paper: Paper) -> str:
        return self.paper_ids.get(id(paper), paper.id)


def earlier_names(store: Store, profile: Profile, addresses: Mapping[str, str] | None = None) -> list[str]:
    """Other users whose last good profile named this profile's address: the same reader under an earlier file
    name (``dan.toml`` renamed ``eve.toml``). Their digests, sent papers and votes count as this user's, so a
    renamed profile neither gets the day's digest twice nor papers it was sent, and keeps what it taught.
    (Two current profiles never share an address: ``load_profiles`` refuses the second.) A loop over every
    user reads ``profile_addresses`` once and passes it as ``addresses``."""
    email = profile.email.strip().lower()
    addresses = profile_addresses(store) if addresses is None else addresses
    return [user for user, named in addresses.items() if user != profile.user and named == email]


def reader_pause(store: Store, profile: Profile, addresses: Mapping[str, str] | None = None) -> tuple[str, dict] | None:
    """(the name it was set under, the pause) when this reader unsubscribed by link, also under an earlier file
    name of the profile (an unsubscribe still holds after ``ada.toml`` is renamed ``eve.toml``); else None.
    Delivery, the daemon's catch-up and `digest status` all ask this."""
    pause = store.pause_of(profile.user)
    if pause is not None:
        return profile.user, pause
    return next(((user, pause) for user in earlier_names(store, profile, addresses)
                 if (pause := store.pause_of(user)) is not None), None)


def profile_addresses(store: Store) -> dict[str, str]:
    """{user: the address their last good profile text names, lower case}."""
    return {user: named for user, text in store.profile_texts().items() if (named := _address_in(text))}


@functools.lru_cache(maxsize=4096)
def _address_in(text: str) -> str | None:
    """The address a profile text names (each text is parsed once however often it is asked)."""
    import tomllib

    try:
        named = tomllib.loads(text.lstrip("\ufeff")).get("email")
    except (tomllib.TOMLDecodeError, RecursionError):
        return None
    return named.strip().lower() if isinstance(named, str) else None


def user_address(store: Store, settings: Settings, user: str) -> str | None:
    """The address of ``user``'s profile now (its file, else its last good text); for a name a renamed profile
    file left behind, the address of the file that has it now. None: no such reader."""
    try:
        loaded = load_profiles(settings.profiles_path, store.profile_texts())
    except ProfileError:
        return None
    profile = loaded.profiles.get(user)
    if profile is None:
        # a digest sent under an earlier file name of a profile: its address now belongs to the renamed file
        named = profile_addresses(store).get(user)
        profile = next((p for p in loaded.profiles.values() if named and p.email.strip().lower() == named), None)
    return profile.email if profile else None


def reader_names(store: Store, settings: Settings, user: str) -> list[str]:
    """``user`` first, then its earlier names (``earlier_names``): the names whose last good profile texts named
    the address ``user`` has now (``user_address``, else its own last good text). For a link that carries only
    the user's name (a digest page), so a renamed profile still reaches its digests."""
    addresses = profile_addresses(store)
    email = (user_address(store, settings, user) or "").strip().lower() or addresses.get(user)
    return [user, *(u for u, named in addresses.items() if email and u != user and named == email)]


def reader_votes(store: Store, names: Sequence[str]) -> list[tuple[str, Vote]]:
    """A reader's current votes under all their ``names`` (current name first; on a paper voted under several,
    the first name's vote counts): (the name it was given under, the vote)."""
    out: list[tuple[str, Vote]] = []
    seen: set[str] = set()
    for name in names:
        for vote in store.votes(name):
            pid = store.resolve_id(vote.paper_id)
            if pid not in seen:
                seen.add(pid)
                out.append((name, vote))
    return out


def profile_anchors(store: Store, profile: Profile) -> tuple[list[Anchor], list[str], list[str]]:
    """What the user said (facets, seeds) and taught (votes), as anchors with the text to embed for each."""
    anchors, texts, notes = [], [], []
    for interest in profile.interests:
        anchors.append(Anchor("facet", interest.label, interest.weight))
        texts.append(interest.text)
    for seed in profile.seeds:
        known = store.find_paper(arxiv_id=seed.arxiv, doi=seed.doi, title=seed.title)
        if known is not None:
            anchors.append(Anchor("seed", " ".join(known.title.split())))
            texts.append(known.text)
        elif seed.title:
            anchors.append(Anchor("seed", seed.title))
            texts.append(f"{seed.title}. {seed.abstract}" if seed.abstract else seed.title)
        else:
            where = f"{profile.path}:{seed.line}" if seed.line else profile.path
            notes.append(f"{where}: seed {seed.label} is not in the store yet; add its title to the seed "
                         "so it can be used before the paper arrives in an alert")
    # the library's entries carry their own title and, mostly, abstract; one without an abstract takes the
    # store's text when its id is known there (looked up by id only: a library has hundreds of entries)
    inline = {normalise_title(a.label) for a in anchors if a.kind == "seed"}
    for seed in profile.library_seeds:
        if not seed.title or normalise_title(seed.title) in inline:
            continue
        inline.add(normalise_title(seed.title))
        anchors.append(Anchor("seed", " ".join(seed.title.split()), source="library"))
        known = store.find_paper(arxiv_id=seed.arxiv, doi=seed.doi) \
            if not seed.abstract and (seed.arxiv or seed.doi) else None
        if known is not None and (known.abstract or known.snippet):
            texts.append(known.text)
        else:
            texts.append(f"{seed.title}. {seed.abstract}" if seed.abstract else seed.title)
    # what the reader taught, also under an earlier file name
    votes = [v for _, v in reader_votes(store, [profile.user, *earlier_names(store, profile)])]
    voted = store.get_papers([v.paper_id for v in votes])
    for vote in votes:
        paper = voted.get(store.resolve_id(vote.paper_id))
        if paper is None:
            continue
        anchors.append(Anchor("liked" if vote.value > 0 else "disliked", " ".join(paper.title.split())))
        texts.append(paper.text)
    return anchors, texts, notes


def embed_profile(store: Store, embedder: Embedder, profile: Profile, *,
                  should_stop: Callable[[], bool] | None = None) -> tuple[int, int]:
    """Embed ahead of time what ranking this profile needs (seeds, library, votes): a new library of hundreds
    of papers then costs its minutes when it is read, not at send time. Returns (embedded now, how many texts
    had no vector): fewer when ``should_stop()`` said stop between chunks."""
    _, texts, _ = profile_anchors(store, profile)
    return embed_missing(store, embedder, texts, should_stop=should_stop)


def own_seed(profile: Profile) -> Callable[[str | None, str | None, str | None], str | None]:
    """Which of the profile's seed papers (or library entries) a paper is: ``(arxiv_id, doi, title) -> where it is
    named`` ("profiles/you.toml:23", "your library"), else None. A paper the reader gave as a seed is one they know:
    it is no candidate for their digest when an alert brings it. Titles count when they are long enough to be
    one paper's alone."""
    where: dict[tuple[str, str], str] = {}
    titled: dict[str, tuple[str, str | None, str | None]] = {}  # title key -> (where, the seed's arXiv id, DOI)
    for seed, named in [*((s, f"{display_path(profile.path)}:{s.line}" if s.line else display_path(profile.path))
                          for s in profile.seeds),
                        *((s, "your library (the profile's library file)") for s in profile.library_seeds)]:
        arxiv, doi = normalise_arxiv_id(seed.arxiv), normalise_doi(seed.doi)
        for key in (("arxiv", arxiv), ("doi", doi)):
            if key[1]:
                where.setdefault(key, named)
        title = normalise_title(seed.title or "")
        if len(title.split()) >= 4 and not _BOILERPLATE_TITLE.match(title):
            titled.setdefault(title, (named, arxiv, doi))

    def find(arxiv_id: str | None, doi: str | None, title: str | None) -> str | None:
        arxiv_id, doi = normalise_arxiv_id(arxiv_id), normalise_doi(doi)
        for key in (("arxiv", arxiv_id), ("doi", doi)):
            if key[1] and key in where:
                return where[key]
        named, seed_arxiv, seed_doi = titled.get(normalise_title(title or ""), (None, None, None))
        # the same title under another id is another paper (a different version's DOI is rare; a namesake is not)
        if named is None or (arxiv_id and seed_arxiv and arxiv_id != seed_arxiv) or (doi and seed_doi and doi != seed_doi):
            return None
        return named

    return find


def done_period(store: Store, profile: Profile, addresses: Mapping[str, str] | None = None) -> str | None:
    """The latest period whose digest this reader has had (also under an earlier name of their profile file:
    ``deliver_user`` would answer 'already' for it, so the catch-up must not announce it, and a day before it is
    passed over). ``addresses``: the ``profile_addresses`` a loop over every user read once."""
    return store.last_done_period(profile.user, profile.email, earlier_names(store, profile, addresses))


# titles that many papers share: a seed titled so finds no paper by its title alone
_BOILERPLATE_TITLE = re.compile(
    r"^(?:(?:publisher s |author s? )?(?:correction|erratum|corrigendum|retraction|reply|response|comment)"
    r"(?:$| (?:to|on)\b)|(?:editorial|letter to the editor|introduction|preface|foreword|editor s note|"
    r"in memoriam|obituary|book review)$)")


def rank_user(store: Store, embedder: Embedder, settings: Settings, profile: Profile, *,
              today: date | None = None, now: datetime | None = None,
              progress: Callable[[int, int], None] | None = None) -> UserRanking:
    """Rank this user's candidates: recent papers never sent to them. ``progress`` follows the embedding of
    what is new (a library's first read, papers not embedded yet)."""
    candidates = store.candidate_papers(profile.user, candidate_since(settings, now),
                                        replacements=settings.ranking.include_replacements,
                                        also_sent_to=earlier_names(store, profile))
    seeded = own_seed(profile)  # the reader's own seed papers are papers they know, not news
    candidates = [(pid, p) for pid, p in candidates if seeded(p.arxiv_id, p.doi, p.title) is None]
    anchors, texts, notes = profile_anchors(store, profile)
    anchor_vecs, embedded = cached_vectors(store, embedder, texts, progress)
    if embedded > 20:  # a library's first read: say where the time went (each text is embedded once)
        log.info("%s: embedded %d new profile texts (seeds, library, votes), once", profile.user, embedded)
    signals = build_signals(profile, anchors, anchor_vecs)
    papers = [p for _, p in candidates]
    if papers:
        cand_vecs, _ = embed_papers(store, embedder, papers, progress)
        # the rest of the world, to calibrate this user's scores against
        # seeded by the day: the same store ranks the same way within a day (preview, then send)
        seed = (today or date.today()).toordinal()
        background = [p for _, p in store.random_papers(settings.ranking.background_size, seed=seed)]
        background_vecs = embed_papers(store, embedder, background)[0] if background else None
        # what clears the floor only because this store holds nothing closer is held back (reference.py)
        bar = similarity_bar(store, embedder, progress)
    else:
        cand_vecs, background_vecs = np.zeros((0, anchor_vecs.shape[1] if anchor_vecs.size else 1)), None
        bar = None
    max_items = profile.max_items or settings.ranking.default_max_items
    ranking = rank(signals, cand_vecs, papers, max_items=max_items, floor=profile.relevance_floor,
                   today=today, background_vecs=background_vecs, min_similarity=bar)
    ids = {id(p): pid for pid, p in candidates}
    return UserRanking(profile, ranking, ids, len(candidates), notes)


def matches(paper: Paper, paper_id: str, query: str) -> bool:
    """``digest rank --find``: see ``models.matches_query``."""
    return matches_query(paper.title, (paper_id, paper.arxiv_id, paper.doi), query)


def verdict(user_ranking: UserRanking, item: ScoredPaper) -> str:
    """Why a ranked candidate is, or is not, in the digest: the same rules ``rank.select`` applies."""
    ranking, profile = user_ranking.ranking, user_ranking.profile
    picked = [id(i.paper) for i in ranking.picked]
    if id(item.paper) in picked:
        return (f"picked: in the digest, paper {picked.index(id(item.paper)) + 1} of its {len(picked)} (the digest "
                "lists its papers by score)")
    if "muted" in item.details:
        return "muted by the profile ([mute] keywords / authors): never picked"
    if "loose" in item.details:
        return (f"held back as a loose match: it clears the floor ({item.score:.2f}), but nothing you named (an "
                f"interest, a seed, a paper you liked) is closer to it than {item.details['closest']:.2f}, and a pick "
                f"needs {ranking.min_similarity:.2f}, as close as one pair in ten of random papers: the store holds "
                "little of your field, and this is only its least unrelated paper")
    if item.score < ranking.floor:
        places = 2 if f"{item.score:.2f}" != f"{ranking.floor:.2f}" else 4  # never "0.20 < 0.20"
        return f"below the floor: {item.score:.{places}f} < {ranking.floor:.{places}f} (relevance_floor)"
    cleared = len(ranking.cleared())
    max_items = ranking.max_items or profile.max_items
    return (f"cleared the floor but not picked: {cleared} {'paper' if cleared == 1 else 'papers'} did, for max_items = {max_items}; the "
            "digest takes each interest's best paper, then the best of the rest, preferring papers unlike those "
            "already picked")


def why_not_candidate(store: Store, settings: Settings, profile: Profile, row: dict,
                      now: datetime | None = None) -> str:
    """Why a stored paper (a ``Store.papers_matching`` row) is not among the user's candidates at all."""
    names = [profile.user, *earlier_names(store, profile)]
    sent = store.sent_record(names, row["id"])
    voted = next((v for v in (store.get_vote(name, row["id"]) for name in names) if v), 0)
    if voted and not sent:
        return (f"you voted {'👍' if voted > 0 else '👎'} on it already (on a digest's page): a paper you judged is "
                "not ranked again")
    if sent:
        who = "" if sent["user"] == profile.user else f" as user {sent['user']!r} (an earlier name of this profile)"
        return f"already sent{who} in the digest of {sent['period'] or sent['sent_at'][:10]}: a paper is sent once"
    if row["first_seen"] < candidate_since(settings, now):
        return (f"arrived {row['first_seen'][:10]}, before the last {settings.ranking.candidate_days} days, which "
                "are what is ranked (candidate_days in config.toml's [ranking])")
    seeded = own_seed(profile)(row["arxiv_id"], row["doi"], row["title"])
    if seeded is not None:
        return f"one of your seed papers ({seeded}): a paper you already know is not ranked"
    if row["section"] == "replaced" and not settings.ranking.include_replacements:
        return ("a revised version of an older arXiv paper (the listing's replacements): not news, so not ranked "
                "(include_replacements in config.toml's [ranking])")
    return "not a candidate"


# -- deliver -----------------------------------------------------------------------------------------------
@dataclass
class Delivery:
    """What happened to one user's digest in this run.

    status: sent | written (outbox) | skipped (quiet day, quiet_day = "skip") | already (done for this period)
    | busy (another live run holds the claim) | retry (transient failure: the next run tries again)
    | failed (refused permanently: not tried again for this period) | paused | dry-run
    | passed (an earlier day than one already done: passed over)
    """

    user: str
    status: str
    items: int = 0
    path: Path | None = None
    error: str | None = None
    subject: str = ""
    to: str = ""
    attempts: int = 0
    titles: tuple[str, ...] = ()
    # 'already': why, when not a refusal (e.g. sent under an earlier file name of the profile); 'skipped': that an
    # earlier run skipped it; 'dry-run': why nothing would go out (a quiet day, quiet_day = "skip")
    note: str = ""


def web_link(settings: Settings, key: Secret, user: str, action: str, paper_id: str | None = None) -> str:
    """A signed link to the feedback server under ``web.base_url``: a vote, unsubscribe, or a digest's page
    (``paper_id`` = the digest's id)."""
    return f"{settings.web.base_url.rstrip('/')}/{link_path(key, user, action, paper_id)}"


def _links(settings: Settings, key: Secret, profile: Profile, paper_id: str | None, action: str, *,
           title: str = "") -> str:
    """The signed web link; with ``title``, the mailto: link to web.reply_address that sends the same vote."""
    if title:
        from .feedback import vote_mailto

        return vote_mailto(settings.web.reply_address, make_token(key, profile.user, action, paper_id), action, title)
    return web_link(settings, key, profile.user, action, paper_id)


def compose(settings: Settings, store: Store, user_ranking: UserRanking, period: str, digest_id: int | None = None,
            *, preview: bool = False):
    """Render the digest of one ranking: returns (rendered, context). With ``digest_id`` (the row its papers are
    saved under), the digest links to its own web page, where the reader can vote on several papers at once."""
    profile = user_ranking.profile
    # once per digest: it may mean reading a file. A preview (dry run) where no key is configured nor made yet
    # signs with a throwaway one (its links are never followed) rather than making the key file; a key that is
    # configured is read as for a send, so its errors show in the preview too
    web = settings.web
    throwaway = preview and not (settings.data_path / "secret.key").exists() and not web.secret_key_file \
        and not os.environ.get(web.secret_key_env)
    key = Secret(os.urandom(32).hex()) if throwaway else web.secret_key(settings.data_path)
    reply = settings.web.reply_address
    items = []
    for item in user_ranking.ranking.picked:
        pid = user_ranking.id_of(item.paper)
        items.append(item_context(item, store.paper_sources(pid), _links(settings, key, profile, pid, "up"),
                                  _links(settings, key, profile, pid, "down")))
        # votes by email, for readers the web server cannot reach: mailto links (empty: not configured)
        title = " ".join(item.paper.title.split())
        items[-1]["reply_up"] = _links(settings, key, profile, pid, "up", title=title) if reply else ""
        items[-1]["reply_down"] = _links(settings, key, profile, pid, "down", title=title) if reply else ""
    context = {
        "date": date.fromisoformat(period), "items": items, "quiet": not items,
        "n_candidates": user_ranking.n_candidates,
        "profile_file": display_path(profile.path) or f"profiles/{profile.user}.toml",
        "unsubscribe_url": _links(settings, key, profile, None, "unsubscribe"), "user": profile.name,
        "reply_address": reply,
        "page_url": _links(settings, key, profile, str(digest_id), "digest") if digest_id is not None else "",
        # the runners-up and the papers below the floor its page shows: saved with a frozen digest, else those
        # this ranking will save
        "n_more": (len(store.digest_items(digest_id, more=True)) if digest_id is not None else 0)
        or len(user_ranking.ranking.runners_up(MORE_ON_PAGE)),
        "n_below": (len(store.digest_items(digest_id, below=True)) if digest_id is not None else 0)
        or len(user_ranking.ranking.below(BELOW_ON_PAGE)),
        # papers that cleared the floor but were held back as loose matches: a quiet day says why
        "n_loose": len(user_ranking.ranking.loose()) or (sum('"loose"' in (row["details"] or "") for row in
                                                              store.digest_items(digest_id, below=True))
                                                          if digest_id is not None else 0),
    }
    return render_digest(context), context


def _frozen_ranking(store: Store, profile: Profile, row: dict) -> UserRanking:
    """The ranking a digest was composed from, rebuilt from its saved items: every retry of one digest sends
    the same papers under the same Message-ID, whatever arrived or was voted on meanwhile."""
    picked, ids = [], {}
    for _, pid, item in store.digest_papers(row["id"]):
        picked.append(item)
        ids[id(item.paper)] = pid
    return UserRanking(profile, Ranking(picked=picked), ids, row["n_candidates"] or 0)


MORE_ON_PAGE = 20  # runners-up saved with a digest, for its web page: cleared the floor, no room in the email
BELOW_ON_PAGE = 30  # the best papers below the floor saved with a digest, for its web page (to look through)


class _ClaimLost(Exception):
    """Another run took this digest over while we were composing it: leave the sending to that run."""


def _already(profile: Profile, row: dict) -> Delivery:
    """A digest this period already finished: a refusal ('failed') is its error; anything else may carry a note
    (e.g. it went out under an earlier file name of the profile)."""
    failed = row["status"] == "failed"
    if row["status"] == "skipped" and not row["error"] and not row["n_items"]:  # a quiet day, quiet_day = "skip"
        return Delivery(profile.user, "skipped", to=profile.email, note="decided by an earlier run")
    if row["status"] == "skipped" and (row["error"] or "").startswith(PAUSED_NOTE):
        return Delivery(profile.user, "paused", to=profile.email,
                        error=f"{row['error']}; resumed since, the next digest goes out at its usual time")
    return Delivery(profile.user, "already", row["n_items"] or 0, Path(row["path"]) if row["path"] else None,
                    error=row["error"] if failed else None, note="" if failed else row["error"] or "",
                    to=profile.email)


def _had_it_as(profile: Profile, period: str, earlier: str) -> str:
    return (f"{profile.email} already had the {period} digest as user {earlier!r} (the same address in an earlier "
            f"profile file); the next digest is {profile.user}'s")


def _earlier_digest(store: Store, profile: Profile, period: str,
                    digest_id: int) -> Delivery | tuple[int, str] | None:
    """The same address's digest of this period under an earlier file name (a renamed profile), seen from the
    claimed ``digest_id``. Sent or skipped: no second one today (a Delivery 'already'). Left unfinished (its run
    died, or a transient failure): its profile file is gone, so no other run will finish it; its claim is taken
    and, if its papers were frozen, (its id, a note) is returned, to be resent under its Message-ID like any
    unfinished digest (docs/delivery.md) instead of a second, different digest; the caller settles
    ``digest_id`` by that send's outcome. Without frozen papers it is closed as superseded. Being sent by a live
    run: 'busy', and this claim is left for the next run. None: nothing under an earlier name."""
    for earlier in earlier_names(store, profile):
        row = store.digest_for(earlier, period)
        if row is None or row["status"] in ("failed", "superseded"):
            continue
        if row["status"] in ("sent", "skipped"):
            # the same address had this day's digest under an earlier file name: not a second one today
            note = _had_it_as(profile, period, earlier)
            store.mark_digest(digest_id, "skipped", error=note)
            return Delivery(profile.user, "already", row["n_items"] or 0, note=note, to=profile.email)
        earlier_id = store.claim_digest(earlier, period)
        if earlier_id is None:  # a live run is sending it under the earlier name right now
            note = f"the {period} digest of {profile.email} is being sent as user {earlier!r} (an earlier file name)"
            store.mark_digest(digest_id, "retry", error=note)
            return Delivery(profile.user, "busy", error=note, to=profile.email)
        if not row["message_id"]:  # it never got as far as its papers: nothing of it can have gone out
            store.mark_digest(earlier_id, "superseded", error=f"superseded by {profile.user}'s digest (renamed "
                                                               "profile file)")
            continue
        note = (f"{profile.email}'s {period} digest was left unfinished as user {earlier!r} (an earlier file name "
                f"of this profile); it went out as it was composed, under its Message-ID")
        store.log_event("WARNING", "send", note, user=profile.user)
        return earlier_id, note
    return None


def refused_elsewhere(row: dict | None, profile: Profile) -> bool:
    """Whether a digest row was refused (5xx) for an address the profile no longer names: the corrected address
    gets that day's digest, whoever delivers it (`digest send`, the daemon's send job or its catch-up)."""
    return bool(row and row["status"] == "failed" and row["address"]
                and row["address"].lower() != profile.email.lower())


def deliver_user(store: Store, embedder: Embedder | None, settings: Settings, profile: Profile, *,
                 outbox: Path | None = None, dry_run: bool = False, now: datetime | None = None,
                 send: Callable | None = None, ranker: Callable[[Profile], UserRanking] | None = None) -> Delivery:
    """Claim (user, period), rank, render and deliver one digest exactly once.

    The order is what makes it exactly once (docs/delivery.md): claim the row; rank and save the picked
    papers with a Message-ID (from then on the digest is frozen: a retry resends the same items under the
    same Message-ID); mark 'sending' right before SMTP DATA; mark 'sent' after the 250 reply, which also
    enters the papers into the sent ledger. ``ranker`` replaces ``rank_user`` (tests, previews).
    """
    try:
        return _deliver_user(store, embedder, settings, profile, outbox=outbox, dry_run=dry_run, now=now, send=send,
                             ranker=ranker)
    finally:
        store.let_go()  # a claim left unfinished (its last write failed) is the next delivery's, of this process too


def _deliver_user(store: Store, embedder: Embedder | None, settings: Settings, profile: Profile, *,
                  outbox: Path | None, dry_run: bool, now: datetime | None, send: Callable | None,
                  ranker: Callable[[Profile], UserRanking] | None) -> Delivery:
    period = local_period(profile, now)
    paused_as, pause = reader_pause(store, profile) or (profile.user, None)
    if pause is not None:
        # unsubscribed by a link: nothing goes out until `digest resume USER`, whichever job calls this; the
        # period is recorded as skipped, so a resume later that day waits for the next send time (as it says)
        # and no catch-up takes the day for missed
        note = _pause_note(paused_as, pause)
        if not dry_run and (digest_id := store.claim_digest(profile.user, period)) is not None:
            store.mark_digest(digest_id, "skipped", error=f"{PAUSED_NOTE}{note}")
        return Delivery(profile.user, "paused", error=note)

    def ranking() -> UserRanking:
        if ranker is not None:
            return ranker(profile)
        return rank_user(store, embedder, settings, profile, today=date.fromisoformat(period), now=now)

    done = done_period(store, profile)
    if done is not None and period < done:
        # a later day's digest already went out (the profile's timezone moved west, or the clock was set back):
        # a day never goes out after a later one (docs/running.md), here as in the daemon and `digest status`
        return Delivery(profile.user, "passed", to=profile.email,
                        note=f"the digest of {done}, a later day than this one ({period}), is done already (sent, "
                             "written, skipped or refused; the profile's timezone moved west, or the clock was set "
                             "back); the next digest goes out at its usual time")

    row = store.digest_for(profile.user, period)
    readdressed = refused_elsewhere(row, profile)
    if dry_run:
        if row and row["status"] in DIGEST_DONE and not readdressed:
            return _already(profile, row)
        for earlier in earlier_names(store, profile):  # as _earlier_digest will decide
            other = store.digest_for(earlier, period)
            if other is not None and other["status"] in ("sent", "skipped"):
                return Delivery(profile.user, "already", other["n_items"] or 0, to=profile.email,
                                note=_had_it_as(profile, period, earlier))
            if other is not None and other["status"] in ("claimed", "sending", "retry") and other["message_id"]:
                row = other  # the unfinished digest under the earlier name is the one that would go out
                break
        user_ranking = _frozen_ranking(store, profile, row) if row and row["message_id"] else ranking()
        if not user_ranking.ranking.picked and profile.quiet_day == "skip":
            return Delivery(profile.user, "dry-run", 0, to=profile.email, note='quiet_day = "skip"')
        rendered, context = compose(settings, store, user_ranking, period, preview=True)
        return Delivery(profile.user, "dry-run", len(context["items"]), subject=rendered.subject, to=profile.email,
                        titles=tuple(i["title"] for i in context["items"]))
    if readdressed:
        store.reopen_failed(profile.user, period, f"refused for {row['address']}; the profile names "
                                                  f"{profile.email} now, so it is tried again")
    digest_id = store.claim_digest(profile.user, period)
    own_id, adopted = digest_id, ""  # adopted: the earlier name's unfinished digest is the one sent (its note)
    if digest_id is not None:
        taken = _earlier_digest(store, profile, period, digest_id)
        if isinstance(taken, Delivery):
            return taken
        if taken is not None:
            digest_id, adopted = taken

    def settle_own(status: str, **details) -> None:
        """This name's own row follows the adopted digest: 'skipped' once it went out, else its failure, so the
        next run comes back to it (and `--retry-failed` or a corrected address can reach it)."""
        if adopted:
            store.mark_digest(own_id, status, **details)

    if digest_id is None:
        row = store.digest_for(profile.user, period)
        if row["status"] in DIGEST_DONE:
            return _already(profile, row)
        return Delivery(profile.user, "busy",
                        error=f"being sent by {describe_owner(row['claimed_by'] or '', row['claimed_at'])}")
    for old in store.supersede_unsent(profile.user, period):
        log.info("%s: the unsent digest of %s is superseded by %s", profile.user, old, period)
    picked, rendered = [], None  # (what a handler below says of a digest that went out)

    def record_unconfirmed(why: str) -> str:
        """Record as sent a digest the server most likely has (handed over without its confirmation); the note."""
        note = unconfirmed_note(profile, why)
        try:
            _record_sent(store, digest_id, profile.email, note=note)
        except _SentUnrecorded as unrecorded:
            return f"{note}; {unrecorded}"
        settle_own("skipped", error=adopted)
        return note

    try:
        row = store.digest(digest_id)
        if row["message_id"] and (row["unconfirmed"] or 0) >= MAX_UNCONFIRMED:
            # handed over twice already (a run died while sending): the server most likely has it
            note = record_unconfirmed(row["error"] or f"handed over {row['unconfirmed']} times without the server's "
                                                      "confirmation")
            return Delivery(profile.user, "sent", row["n_items"] or 0, subject=row["subject"] or "",
                            to=profile.email, note=note)
        if row["message_id"]:
            user_ranking, message_id = _frozen_ranking(store, profile, row), row["message_id"]
        else:
            user_ranking, message_id = ranking(), None
        picked = user_ranking.ranking.picked
        if not picked and profile.quiet_day == "skip":
            store.save_digest_items(digest_id, [], [], n_candidates=user_ranking.n_candidates)
            store.mark_digest(digest_id, "skipped")
            settle_own("skipped", error=adopted)
            return Delivery(profile.user, "skipped", to=profile.email)
        rendered, context = compose(settings, store, user_ranking, period, digest_id)
        if message_id is None:
            domain = (settings.smtp.from_addr.rsplit("@", 1)[-1]) or "localhost"
            message_id = make_msgid(idstring=f"digest.{profile.user}.{period}", domain=domain)
            # saving the items with the Message-ID freezes the digest: retries resend exactly these papers
            store.save_digest_items(digest_id, picked, [user_ranking.id_of(i.paper) for i in picked],
                                    n_candidates=user_ranking.n_candidates, subject=rendered.subject,
                                    message_id=message_id,
                                    more=[(i, user_ranking.id_of(i.paper))
                                          for i in user_ranking.ranking.runners_up(MORE_ON_PAGE)],
                                    below=[(i, user_ranking.id_of(i.paper))
                                           for i in user_ranking.ranking.below(BELOW_ON_PAGE)],
                                    floor=user_ranking.ranking.floor)
        msg = build_message(rendered, sender=settings.smtp.from_addr, sender_name=settings.smtp.from_name,
                            to=profile.email, to_name=profile.name, message_id=message_id,
                            unsubscribe_url=context["unsubscribe_url"],
                            reply_to=settings.web.reply_address or None)
        done = Delivery(profile.user, "written" if outbox is not None else "sent", len(picked),
                        subject=rendered.subject, to=profile.email, titles=tuple(i["title"] for i in context["items"]))
        if outbox is not None:
            done.path = write_outbox(msg, rendered.html, outbox, f"{profile.user}-{period}")
            store.mark_digest(digest_id, "sent", path=str(done.path), address=profile.email)
            settle_own("skipped", error=adopted)
            return done

        def before_data() -> None:
            if not store.mark_sending(digest_id):
                raise _ClaimLost(f"digest {digest_id} was taken over by another run before DATA; not sent")

        import asyncio

        result = asyncio.run((send or send_message)(
            msg, settings.smtp, before_data=before_data, not_sent=lambda: store.unmark_sending(digest_id),
            handed_over=lambda reason: store.note_unconfirmed(digest_id, reason) < MAX_UNCONFIRMED))
        if unconfirmed := getattr(result, "unconfirmed", ""):
            done.note = (f"an earlier attempt was handed over, then {unconfirmed}, before the server confirmed it: "
                         f"{profile.email} may have it twice (same Message-ID; many mail programs show it once)")
        _record_sent(store, digest_id, profile.email, note=done.note or None)
        settle_own("skipped", error=adopted)
        done.attempts = getattr(result, "attempts", 1)
        return done
    except DeliveryError as exc:
        if exc.unconfirmed:
            # the server may well have it: recorded as sent (its papers are not offered again), with the doubt said
            note = record_unconfirmed(str(exc))
            return Delivery(profile.user, "sent", len(picked), subject=rendered.subject, to=profile.email,
                            attempts=exc.attempts, note=note)
        status = "failed" if exc.permanent else "retry"
        error = str(exc)
        if error.startswith("RCPT TO refused"):  # the server does not know the reader's address
            error += f"; check email in {display_path(profile.path) or f'profiles/{profile.user}.toml'}"
        try:
            store.mark_digest(digest_id, status, error=error, address=profile.email)
            if getattr(exc, "too_large", False):
                store.unfreeze(digest_id)  # `--retry-failed` then composes it again, with a lower max_items
            settle_own(status, error=error, address=profile.email)
            store.log_event("ERROR", "send", error, user=profile.user)
        except sqlite3.DatabaseError as db_exc:  # not sent, and not recorded either: the next run tries again
            # (the claim stays; a later run takes it over once this one is gone) and the other users go on
            error = f"{error}; and {database_problem(store.path, db_exc)}"
            log.error("digest for %s not sent: %s", profile.user, error)
            return Delivery(profile.user, "retry", error=error, to=profile.email, attempts=exc.attempts)
        return Delivery(profile.user, status, error=error, to=profile.email, attempts=exc.attempts)
    except _ClaimLost as exc:
        settle_own("retry", error=str(exc))
        return Delivery(profile.user, "busy", error=str(exc), to=profile.email)
    except _SentUnrecorded as exc:  # sent: the row stays as it is until the next claim enters the delivery
        log.warning("digest for %s %s", profile.user, exc)
        return Delivery(profile.user, "sent", len(picked), subject=rendered.subject if rendered else "",
                        to=profile.email, note=str(exc))
    except Exception as exc:  # one user's failure never blocks the others; the claim is retried next run
        if isinstance(exc, sqlite3.DatabaseError):  # the store's trouble (a full disk, a lock), said as such
            exc = DigestError(database_problem(store.path, exc))
        # (when the database cannot take even this, the claim stays and the next run takes it over)
        with contextlib.suppress(sqlite3.OperationalError):
            store.mark_digest(digest_id, "retry", error=_one_line(exc))
            settle_own("retry", error=_one_line(exc))
            store.log_event("ERROR", "send", _one_line(exc), user=profile.user)
        if isinstance(exc, DigestError):  # ours (e.g. a model that cannot load): the message says it all
            log.error("digest for %s failed: %s", profile.user, exc)
        else:
            log.exception("digest for %s failed", profile.user)
        return Delivery(profile.user, "retry", error=str(exc), to=profile.email)


def _one_line(exc: Exception) -> str:
    return str(exc) if isinstance(exc, DigestError) else f"{type(exc).__name__}: {exc}"


def unconfirmed_note(profile: Profile, why: str) -> str:
    """What a digest handed over without the server's confirmation says, in the CLI, the log and `digest status`."""
    return (f"unconfirmed: {why}; the server most likely has it, so it is not sent again; if {profile.email} did "
            f"not get it, `digest send --retry-failed --user {profile.user}` that day sends it once more")


class _SentUnrecorded(Exception):
    """The server accepted the digest, the database could not record it, and the delivery was kept in the
    store's ``delivered_path`` file instead (entered by the next claim)."""


def _record_sent(store: Store, digest_id: int, address: str, attempts: int = 5, note: str | None = None) -> None:
    """The server took the message for ``address``: record 'sent' even if the database is busy for a while,
    because a digest left in 'sending' is resent by the next run (see docs/delivery.md). When the whole record
    cannot be written (a full disk: the ledger needs room), the row alone is marked 'sent' and the ledger is
    filled by the next claim; when not even that (a lock held for minutes), the delivery goes to a small file
    the next claim enters (raises _SentUnrecorded, as when that fails too: the row then stays 'sending')."""
    for attempt in range(1, attempts + 1):
        try:
            store.mark_digest(digest_id, "sent", address=address, error=note)
            return
        except sqlite3.OperationalError as exc:
            if attempt < attempts and is_lock(exc):  # a lock may clear; a full disk won't
                log.warning("digest %s was sent but the database cannot record it (%s); trying again (%d/%d)",
                            digest_id, exc, attempt, attempts)
                time.sleep(2 * attempt)
                continue
            failure = exc
            break
    with contextlib.suppress(sqlite3.OperationalError):
        store.mark_sent_only(digest_id, address, note)
        log.warning("digest %s was delivered and is recorded as sent, but the database had no room for its papers "
                    "in the sent ledger (%s); the next run enters them", digest_id, failure)
        return
    if store.note_delivered(digest_id, address, note):
        raise _SentUnrecorded(
            f"delivered, but {store.path} could not record it ({failure}); the delivery is kept in "
            f"{store.delivered_path}, which the next run enters (it is not sent again)")
    raise _SentUnrecorded(
        f"delivered, but neither {store.path} nor {store.delivered_path} could record it ({failure}): the next run "
        "takes it for a digest handed over without confirmation and sends it once more (same Message-ID)")


def record_profile_error(store: Store, loaded: LoadedProfiles, error: Exception) -> tuple[str, str]:
    """Log a profile's error for `digest status`, worded the same by every command and the daemon (so it is one
    event however many see it): returns (the user, the message)."""
    user = Path(str(error).split(":", 1)[0]).stem
    keeps = " (still sending with its last good version)" if user in loaded.stale else ""
    message = f"{error}{keeps}"
    store.log_event("ERROR", "profiles", message, user=user)
    return user, message


def load_user_profiles(store: Store, settings: Settings) -> LoadedProfiles:
    """Load profiles, falling back to the last good text of broken files; remember the good texts (a dry run
    too: who had which address, ``earlier_names``, is read from them in the same run)."""
    loaded = load_profiles(settings.profiles_path, store.profile_texts())
    store.save_profile_texts(loaded.texts)
    for error in loaded.errors:
        record_profile_error(store, loaded, error)
    for warning in loaded.warnings:
        store.log_event("WARNING", "profiles", warning)
    return loaded


PAUSED_NOTE = "paused at its send time: "  # a period skipped because the reader had unsubscribed


def _pause_note(user: str, pause: dict) -> str:
    return (f"unsubscribed by link ({pause['via']}) on {pause['paused_at'][:10]}; "
            f"`digest resume {user}` turns it back on")


def deliver_all(store: Store, embedder: Embedder | None, settings: Settings, profiles: Iterable[Profile], *,
                outbox: Path | None = None, dry_run: bool = False, now: datetime | None = None,
                ranker: Callable[[Profile], UserRanking] | None = None) -> list[Delivery]:
    """Deliver every profile's digest for its current period, one after the other; a failure is reported in
    that user's Delivery and never stops the others."""
    out = []
    unsubscribed = store.paused_users()  # paused by an unsubscribe link, until `digest resume USER`
    for profile in profiles:
        if profile.paused or profile.user in unsubscribed:
            note = _pause_note(profile.user, unsubscribed[profile.user]) if profile.user in unsubscribed else None
            out.append(Delivery(profile.user, "paused", error=note))
            continue
        try:
            out.append(deliver_user(store, embedder, settings, profile, outbox=outbox, dry_run=dry_run, now=now,
                                    ranker=ranker))
        except DigestError as exc:  # raised before anything was recorded: the next run simply tries again
            out.append(Delivery(profile.user, "retry", error=str(exc)))
        except sqlite3.OperationalError as exc:  # the claim could not be written (a lock, a full disk): the same
            out.append(Delivery(profile.user, "retry", error=database_problem(store.path, exc)))
    return out
