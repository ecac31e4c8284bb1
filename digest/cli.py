"""The command line: a thin layer that wires the library together and turns DigestErrors into one line.

Heavy imports (torch via the embedder) happen inside the commands that need the model, so `digest --help`,
`digest check` and `digest parse` start fast.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import sys
from pathlib import Path

import click

from .errors import ConfigError, DigestError, ProfileError, StoreError

REPO = Path(__file__).resolve().parent.parent


class DigestGroup(click.Group):
    """Prints DigestErrors as one clear line with a non-zero exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        import sqlite3

        try:
            return super().invoke(ctx)
        except DigestError as exc:
            for problem in getattr(exc, "problems", None) or [str(exc)]:
                click.secho(f"error: {problem}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:  # found in the middle of a command: the disk, a lock, damage
            from .store import database_problem, is_damage

            click.secho(f"error: {database_problem(ctx.obj.get('db_path'), exc)}", fg="red", err=True)
            ctx.exit(2 if is_damage(exc) else 1)  # a damaged file: like a StoreError
        except KeyboardInterrupt:  # Ctrl-C: what it means for this command, not click's bare "Aborted!" (exit 1)
            if ctx.invoked_subcommand == "serve":  # the documented way to stop the server
                click.echo("stopped (Ctrl-C)", err=True)
                ctx.exit(0)
            hint = INTERRUPTED.get(ctx.invoked_subcommand or "", "")
            click.secho(f"interrupted (Ctrl-C){hint}", fg="yellow", err=True)
            ctx.exit(130)


# what a command stopped with Ctrl-C left behind (every write is one transaction: nothing is half-written)
INTERRUPTED = {
    "send": ("; digests that went out are recorded; one interrupted in the middle is finished by the next `digest "
             "send` or `digest run`, once, with the same papers and Message-ID (`digest status` shows it)"),
    "poll": "; the alerts read so far are stored and marked; the next poll reads the rest",
    "ingest": "; the files read so far are stored; running it again reads the rest and skips what it has",
}


def _settings(ctx: click.Context, *, local: bool = True, **overrides):
    """The settings of this command: --config (or $DIGEST_CONFIG), else ./config.toml when ``local``, else the
    built-in defaults; with --data-dir and ``overrides`` on top."""
    from .config import load_settings

    if ctx.obj.get("data_dir") and "data_dir" not in overrides:
        overrides["data_dir"] = ctx.obj["data_dir"]
    settings = load_settings(ctx.obj["config"], local=local, **overrides)
    ctx.obj["db_path"] = settings.db_path  # for the error message of a database problem
    logging.basicConfig(level=ctx.obj.get("log_level") or settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def _store(settings, *, read_only: bool = False):
    """The store; for a command that only looks (``read_only``), an empty in-memory one when there is no
    database file yet, rather than creating one (e.g. under a mistyped --data-dir)."""
    from .store import Store, another_users_database

    if read_only and not settings.db_path.exists():
        return Store(None)
    if problem := another_users_database(settings.db_path):
        raise StoreError(problem)
    return Store(settings.db_path)


def _no_store(ctx: click.Context, settings) -> str | None:
    """None when the database file exists; else what a command that only reads says: the path, that nothing has
    been read in there, and where the data directory came from (a mistyped --data-dir is the usual cause)."""
    if settings.db_path.exists():
        return None
    return (f"{settings.db_path}: no such file: no store there yet, nothing has been read in under "
            f"{settings.data_path}; check {_data_dir_origin(ctx, settings)}: the data directory comes from "
            "--data-dir, else DIGEST_DATA_DIR, else data_dir in the config")


def _data_dir_origin(ctx: click.Context, settings) -> str:
    """Where this command's data directory came from, as the user set it."""
    given = ctx.obj.get("data_dir_from")
    return (f"--data-dir {ctx.obj['data_dir']}" if given == "--data-dir" else
            f"DIGEST_DATA_DIR={ctx.obj['data_dir']}" if given else
            f"data_dir in {settings.source}" if settings.source != "(defaults)" else
            "data_dir (the built-in default: no config.toml)")


def _new_or_existing_store(ctx: click.Context, settings):
    """The store of a command that reads alerts in: a new one is made where there is none, and said, so a
    mistyped --data-dir is seen at once (mail a poll marks read is not read again into the right store)."""
    _say_new_store(ctx, settings, "check the data directory")
    return _store(settings)


def _say_new_store(ctx: click.Context, settings, fix: str) -> None:
    """Say that there is no database file yet and a new store starts (from where the data directory came)."""
    if not settings.db_path.exists():
        click.secho(f"note: no store at {settings.db_path} yet: starting a new one there (from "
                    f"{_data_dir_origin(ctx, settings)}); if you meant an existing store, {fix}", fg="yellow",
                    err=True)


def _existing_store(ctx: click.Context, settings):
    """The store of a command about what earlier runs left (votes, a digest's page, a pause): an error naming
    the missing database file rather than an empty answer, and nothing created (e.g. under a mistyped
    --data-dir)."""
    missing = _no_store(ctx, settings)
    if missing:
        raise DigestError(missing)
    return _store(settings)


def _embedder(settings):
    from .embed import Embedder

    return Embedder(settings.model.name, batch_size=settings.model.batch_size, offline=settings.model.offline)


def _profile_path(settings, name: str) -> Path:
    """A user name (NAME.toml in profiles_dir) or a profile file's path, as the commands take them."""
    return Path(name) if Path(name).suffix else settings.profiles_path / f"{name}.toml"


def _load_profile(settings, name: str):
    from .profiles import load_profile

    path = _profile_path(settings, name)
    if not path.exists():
        from .profiles import is_user_id

        known = sorted(p.stem for p in settings.profiles_path.glob("*.toml")
                       if is_user_id(p.stem)) if settings.profiles_path.is_dir() else []
        # a user id is lower case (rank ADA); a file named uma.TOML is not a profile until it ends in .toml
        close = difflib.get_close_matches(path.stem.lower(), known, n=1, cutoff=0.8)
        users = (f"; did you mean {close[0]}?" if close else "") + (f" (the users there: {', '.join(known)})"
                                                                      if known else "")
        raise DigestError(f"{path}: profile not found; profiles live in {settings.profiles_path}/NAME.toml{users}")
    return load_profile(path)


def _library_error(error: Exception, path) -> bool:
    """Whether ``error`` is the trouble of a library file of the profile at ``path`` (not of the profile)."""
    import re

    return bool(re.match(rf"{re.escape(str(path))}(?::\d+)?: library: ", str(error)))


def _keep_last_good(store, texts: dict[str, str]) -> None:
    """Keep the profile texts that loaded as their users' last good versions (what serves if a file breaks
    later); a preview goes on when the database cannot take them (read-only, locked, full)."""
    import sqlite3

    if store.path is not None and texts:
        with contextlib.suppress(sqlite3.Error, StoreError):
            store.save_profile_texts(texts)


def _profile_or_last_good(settings, store, name: str):
    """(profile, note): the profile as the service reads it now: the file's, or while the file is broken (or
    refused: its address belongs to another user) its last good version, which digests use meanwhile (with the
    note that says so); a profile the service cannot use at all is the error. A file outside profiles_dir is
    that file alone. The texts that load are kept as the last good versions, as `digest send` and the daemon
    keep them, so the version a preview just accepted is the one that serves if the file breaks later."""
    from .profiles import load_profiles

    path = _profile_path(settings, name)
    if not path.exists() or path.resolve().parent != settings.profiles_path.resolve():
        return _load_profile(settings, name), ""
    loaded = load_profiles(settings.profiles_path, store.profile_texts())
    _keep_last_good(store, loaded.texts)
    mine = [e for e in loaded.errors if Path(str(e).split(":", 1)[0]).stem == path.stem
            and not _library_error(e, path)]  # a library's trouble is rank's own line, below
    profile = loaded.profiles.get(path.stem)
    if profile is None and not mine:
        return _load_profile(settings, name), ""
    if profile is None:
        raise mine[0] if len(mine) == 1 else ProfileError("\n  ".join(map(str, mine)))
    if not mine:
        return profile, ""
    what = "refused (its address is another user's)" if any("is already used by" in str(e) for e in mine) \
        else "broken"
    return profile, ("\n  ".join(map(str, mine)) + f"\n  the file is {what}; this ranks its last good version, "
                     "which digests use until the file is fixed")


def _clipped(title: str, width: int = 100) -> str:
    """A title on one line, cut at ``width`` characters with an ellipsis when longer (as the digest cuts them)."""
    from .render import shorten

    return shorten(title, width)


def _score(item) -> str:
    """An item's score as `digest rank` shows it: a muted paper has no score to speak of, only the mute."""
    return "muted" if "muted" in item.details else f"{item.score:.2f}"


def _check_user(settings, store, user: str) -> None:
    """A user name typed on the command line must be somebody: a profile, or votes, history or a pause in the store
    (a user whose profile was removed still has those)."""
    if (settings.profiles_path / f"{user}.toml").exists() or store.vote_events(user) or store.pause_of(user) \
            or store.last_digest(user):
        return
    known = sorted(p.stem for p in settings.profiles_path.glob("*.toml")) if settings.profiles_path.is_dir() else []
    close = difflib.get_close_matches(user, known, n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    raise DigestError(f"no user {user!r}: no {settings.profiles_path / (user + '.toml')} and nothing for them in "
                      f"{settings.db_path}; {hint}known users: {', '.join(known) or 'none'}")


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="DIGEST_CONFIG",
              help="Path to config.toml (default: $DIGEST_CONFIG, else ./config.toml, else built-in defaults).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGEST_DATA_DIR",
              help="Override data_dir from the config (where digest.db lives); default $DIGEST_DATA_DIR.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default=None)
@click.version_option(package_name="digest")
@click.pass_context
def cli(ctx: click.Context, config: str | None, data_dir: str | None, log_level: str | None) -> None:
    """digest: your paper alerts, read, ranked and sent as one personal digest.

    Start with `digest demo`; then copy config.example.toml to config.toml and profiles/ada.toml to your own.
    """
    ctx.ensure_object(dict)
    typed = ctx.get_parameter_source("data_dir") == click.core.ParameterSource.COMMANDLINE
    ctx.obj.update(config=config, data_dir=data_dir, data_dir_typed=typed and data_dir, log_level=log_level,
                   data_dir_from=data_dir and ("--data-dir" if typed else "DIGEST_DATA_DIR"))


def _n(count: int, noun: str, plural: str | None = None) -> str:
    """'1 paper', '2 papers', '0 papers'; ``plural`` where an s will not do ('1 reply', '2 replies')."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def _print_ingest(report) -> None:
    votes = report.feedback + report.feedback_rejected
    replies = f"{_n(votes, 'vote reply', 'vote replies')}, " if votes else ""
    click.echo(f"emails read: {report.emails} ({_n(report.alerts, 'alert')}, {replies}{report.duplicates} already "
               f"seen, {report.not_alerts} not paper alerts, {report.failed} failed)")
    click.echo(f"papers: {report.new} new, {report.merged} merged")
    if report.feedback or report.feedback_rejected:
        rejected = f", {report.feedback_rejected} refused (see `digest status`)" if report.feedback_rejected else ""
        click.echo(f"votes by email: {_n(report.feedback, 'reply', 'replies')} recorded{rejected}")
    for error in report.errors:
        click.secho(f"  failed: {error}", fg="yellow")
    for warning in report.warnings:
        click.secho(f"  read in part: {warning}", fg="yellow")
    for note in report.unread:
        click.secho(f"  {note}", fg="yellow")


@cli.command()
@click.option("--data-dir", default="demo-data", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo keeps its SQLite database and outbox.")
@click.option("--inbox", default=str(REPO / "sample_inbox"), show_default=True, type=click.Path(exists=True),
              help="The sample inbox to ingest (a folder of .eml files or a Maildir).")
@click.option("--profiles", "profiles_dir", default=str(REPO / "profiles"), show_default=True,
              type=click.Path(exists=True, file_okay=False),
              help="The profiles to write digests for (the examples ada and ben; your own folder to try yours).")
@click.pass_context
def demo(ctx: click.Context, data_dir: str, inbox: str, profiles_dir: str) -> None:
    """Run the whole job on embedded defaults: ingest the sample inbox, embed, rank, write digests.

    Needs no configuration, and a config.toml in this folder is not read (--config is): the built-in defaults,
    the example profiles in profiles/, and DATA_DIR/outbox for the digests, as .eml (and .html for viewing).

    Example:

        digest demo && xdg-open demo-data/outbox/ada-*.html
    """
    from .pipeline import deliver_all, embed_new, ingest_paths, load_user_profiles

    # the demo's own --data-dir, else a global one typed with it; never $DIGEST_DATA_DIR, which may be a real store
    if ctx.get_parameter_source("data_dir") != click.core.ParameterSource.COMMANDLINE:
        data_dir = ctx.obj.get("data_dir_typed") or data_dir
    # the embedded defaults: a config.toml in this folder (the real setup's) is not the demo's; --config is
    settings = _settings(ctx, local=False, data_dir=data_dir, profiles_dir=profiles_dir)
    store = _store(settings)
    report = ingest_paths(store, [Path(inbox)])
    _print_ingest(report)
    click.echo(f"papers in store: {store.count_papers()}")
    embedder = _embedder(settings)
    click.echo(f"embedded: {embed_new(store, embedder, settings, _embed_progress(settings))[0]}")
    loaded = load_user_profiles(store, settings)
    for error in loaded.errors:
        click.secho(f"profile error: {error}", fg="red", err=True)
    outbox = settings.data_path / "outbox"
    deliveries = deliver_all(store, embedder, settings, loaded.profiles.values(), outbox=outbox)
    click.echo(f"digests: {sum(d.status == 'written' for d in deliveries)} written")
    for d in deliveries:
        _print_delivery(d)
    written = [d for d in deliveries if d.path]
    if written:
        from .profiles import display_path

        profile = display_path(Path(profiles_dir) / f"{written[0].user}.toml")
        click.echo(f"next: open {display_path(written[0].path.with_suffix('.html'))} in a browser; its 👍/👎 links "
                   f"answer while `digest --data-dir {data_dir} serve` runs (at {settings.web.base_url}), and "
                   f"`digest --data-dir {data_dir} rank {profile}` shows every score with its reason")
    if any(d.status in ("failed", "retry") for d in deliveries):
        sys.exit(1)


def _embed_progress(settings, what: str = "papers", every: float = 10.0):
    """A progress(done, total) callback for embedding: a first line saying what takes the time, then a line at
    most every ``every`` seconds (the first run embeds a few hundred papers: minutes on a small CPU)."""
    import time

    state = {"start": 0.0, "last": 0.0}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == 0:
            state["start"] = state["last"] = now
            click.echo(f"embedding {total} new {what} with {settings.model.name} (each {what[:-1]} once; the model "
                       "loads first, then this can take minutes on a small CPU)...")
        elif done == total or now - state["last"] >= every:
            state["last"] = now
            click.echo(f"  {done}/{total} {what} embedded ({now - state['start']:.0f} s)")

    return progress


def _print_delivery(d) -> None:
    """One line per user (plus the titles on a dry run): what went out, or why nothing did."""
    if d.status in ("written", "sent"):
        where = f" -> {d.path} (+ {d.path.with_suffix('.html')})" if d.path else f" to {d.to}"
        tries = f" (after {d.attempts} attempts)" if d.attempts > 1 else ""
        # a quiet day's note (quiet_day = "note") is a delivery too: "0 papers sent" alone reads as a failure
        quiet = f" (the quiet-day note, quiet_day = \"note\": {d.subject})" if not d.items and d.subject else ""
        click.echo(f"  {d.user}: {_n(d.items, 'paper')} {d.status}{where}{tries}{quiet}")
        if d.note:
            click.secho(f"    {d.note}", fg="yellow")
    elif d.status == "already":
        if d.note:
            click.echo(f"  {d.user}: already delivered for this period, not sent again: {d.note}")
        elif d.error:
            click.echo(f"  {d.user}: refused earlier for this period, not tried again: {d.error} (after fixing "
                       "the cause: `digest send --retry-failed`)")
        else:
            # an outbox write is the day's delivery: say so, or a later SMTP run looks as if mail had gone out
            where = f": it was written to a file, {d.path} (an outbox file counts as the day's delivery, so no " \
                    "email follows for this period; the papers are in that file)" if d.path else ""
            click.echo(f"  {d.user}: already delivered for this period, not sent again{where}")
    elif d.status == "busy":
        click.echo(f"  {d.user}: another run is sending this digest; left to it ({d.error})")
    elif d.status == "passed":
        click.echo(f"  {d.user}: passed over, nothing sent: {d.note}")
    elif d.status == "dry-run" and d.note:
        click.echo(f"  {d.user}: a quiet day, would send nothing ({d.note})")
    elif d.status == "dry-run":
        click.echo(f"  {d.user}: would send {_n(d.items, 'paper')} to {d.to}: {d.subject}")
        for number, title in enumerate(d.titles, 1):
            click.echo(f"      {number}. {title}")
    elif d.status == "skipped":
        click.echo(f"  {d.user}: quiet day, nothing sent (quiet_day = \"skip\"" + (f"; {d.note})" if d.note else ")"))
    elif d.status == "paused":
        click.echo(f"  {d.user}: paused ({d.error or 'paused = true in the profile'})")
    elif d.status == "retry":
        click.secho(f"  {d.user}: not sent, the next run retries it: {d.error}", fg="red")
    elif d.status == "failed":
        click.secho(f"  {d.user}: refused, not retried for this period: {d.error}", fg="red")
    else:
        extra = f": {d.error}" if d.error else ""
        click.echo(f"  {d.user}: {d.status}{extra}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Store the papers of alert emails: .eml files, mboxes, Maildirs, or folders of them.

    Example:

        digest ingest ~/Mail/alerts/ saved-alert.eml
    """
    from .pipeline import ingest_paths

    settings = _settings(ctx)
    if not ctx.obj.get("log_level"):
        logging.getLogger("digest.feedback").setLevel(logging.WARNING)  # a vote reply is counted below, once
    store = _new_or_existing_store(ctx, settings)
    report = ingest_paths(store, paths, settings)
    _print_ingest(report)
    if report.new:
        # the cost comes at the next command that ranks: said here, so that wait is no surprise
        click.echo(f"the {_n(report.new, 'new paper')} {'is' if report.new == 1 else 'are'} embedded, once each, by "
                   f"the next `digest rank`, `send` or `run` ({settings.model.name}: a few minutes per few hundred "
                   "papers with abstracts on a small CPU)")
    if report.failed or report.errors:  # an email that failed, or a path that held no email
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per paper.")
def parse(paths: tuple[Path, ...], as_json: bool) -> None:
    """Print the papers found in emails, without storing anything.

    PATH may be an .eml, an mbox, a Maildir, a folder, or a bare .html/.txt body.

    Example:

        digest parse --json alert.eml | jq .title
    """
    from .errors import ParseError
    from .parse import NO_EMAIL, iter_raw_messages, parse_message

    failed = 0
    for path in paths:
        found = 0
        for label, raw in iter_raw_messages(path):
            found += 1
            try:
                parsed = parse_message(raw)
            except ParseError as exc:
                failed += 1
                click.secho(f"{label}: {exc}", fg="red", err=True)
                continue
            if as_json:
                for paper in parsed.papers:
                    record = paper.to_json()
                    click.echo(json.dumps(record, ensure_ascii=False))
            else:
                click.echo(f"{label}: {parsed.kind or 'not a paper alert'}, {_n(len(parsed.papers), 'paper')}")
                for paper in parsed.papers:
                    ident = paper.arxiv_id or paper.doi
                    click.echo(f"  - {paper.title}{f'  [{ident}]' if ident else ''}")
            for warning in parsed.warnings:
                click.secho(f"{label}: {warning}", fg="yellow", err=True)
        if not found:
            failed += 1
            click.secho(f"{path}: {NO_EMAIL}", fg="red", err=True)
    if failed:
        sys.exit(1)


@cli.command(name="rank")
@click.argument("profile")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many candidates to show.")
@click.option("--find", "query", metavar="TEXT",
              help="Only papers whose title has the words of TEXT in that order (or whose arXiv id or DOI is TEXT; "
                   "else all its words, also in the authors and abstract): where each ranks, and why it is or is "
                   "not in the digest.")
@click.pass_context
def rank_cmd(ctx: click.Context, profile: str, limit: int, query: str | None) -> None:
    """Preview a user's ranking: score, title and why, without sending anything.

    PROFILE is a user name (NAME.toml in profiles_dir) or a path to a profile file. Picked items are marked ✓.
    --find answers "why is this paper not in my digest?": its place in the ranking and the rule that left it
    out (below the floor, muted, no room), or why it is not ranked at all (already sent or voted on, one of
    your seed papers, too old, an arXiv replacement).

    Example:

    \b
        digest rank ada --limit 10
        digest rank ada --find "speculative decoding"
    """
    from .pipeline import candidate_since, earlier_names, rank_user
    from .profiles import with_library

    settings = _settings(ctx)
    store = _store(settings, read_only=True)
    prof, broken = _profile_or_last_good(settings, store, profile)
    prof, library_errors, library_warnings = with_library(prof)
    if broken:
        click.secho(f"note: {broken}", fg="yellow")
    if not store.count_papers():
        # before loading the model (seconds): there is nothing to rank
        missing = _no_store(ctx, settings)
        raise DigestError((f"{missing}; or read alerts in" if missing else
                           f"{settings.db_path}: no papers in the store yet; read alerts in") + " with `digest poll` "
                          "(IMAP) or `digest ingest PATH`, or look at the demo's store: "
                          "`digest --data-dir demo-data rank " + prof.user + "`")
    stored = store.papers_matching(query, limit=limit) if query is not None else []
    if query is not None and not stored:
        # before loading the model (seconds): no ranking can show it. The same words in another order, or in the
        # authors or abstract, may name the paper the user means: say which, so the next --find can take it
        # (an answer, not an error: "not found:" and exit status 1, as grep does)
        near, n_near = store.search_papers(query, limit=3)
        if near:
            titles = "; ".join(repr(" ".join(r["paper"].title.split())) for r in near)
            click.echo(f"not found: no title in the store contains {query!r} (--find takes words in a title's "
                       f"order, an arXiv id or a DOI); {_n(n_near, 'paper')} {'has' if n_near == 1 else 'have'} "
                       f"all its words{', e.g.' if n_near > len(near) else ':'} {titles}", err=True)
        else:
            click.echo(f"not found: no paper in the store matches {query!r}: no alert read so far had it (`digest "
                       "parse FILE` shows the papers a mail holds; `digest ingest FILE` stores them)", err=True)
        sys.exit(1)
    # labelled as `digest check` labels them (the preview goes on with what serves)
    for problem in library_errors:
        click.secho(f"error: {problem}", fg="red")
    for problem in [*prof.notes, *library_warnings]:
        click.secho(f"warning: {problem}", fg="yellow")
    result = rank_user(store, _embedder(settings), settings, prof, progress=_embed_progress(settings, "texts"))
    for note in result.notes:
        click.secho(f"note: {note}", fg="yellow")
    picked = {id(i.paper) for i in result.ranking.picked}
    sent = store.count_sent_since(prof.user, candidate_since(settings), also_sent_to=earlier_names(store, prof))
    loose = len(result.ranking.loose())
    click.echo(f"{prof.user}: {len(result.ranking.picked)} picked of {result.n_candidates} candidates "
               f"(floor {result.ranking.floor:.2f})"
               + (f"; {_n(sent, 'recent paper')} already sent to {prof.user} (or voted on) "
                  f"{'is not a candidate' if sent == 1 else 'are not candidates'} again" if sent else ""))
    if loose:
        click.echo(f"{_n(loose, 'paper')} cleared the floor but {'was' if loose == 1 else 'were'} held back as "
                   f"loose matches: nothing in the profile is as close to {'it' if loose == 1 else 'them'} as "
                   f"{result.ranking.min_similarity:.2f} (a pick needs that), so the store holds little of this "
                   "reader's field; add interests or seed papers closer to what arrives, or check that the alerts "
                   "for this field reach the mailbox")
    if query is not None:
        _find_in_ranking(settings, store, prof, result, query, limit, stored)
        return
    click.echo(f"{'':2}{'score':>6}  title / why")
    for item in result.ranking.scored[:limit]:
        mark = "✓" if id(item.paper) in picked else " "
        click.echo(f"{mark:2}{_score(item):>6}  {_clipped(item.paper.title)}")
        click.echo(f"{'':10}why: {item.reason}")
    if result.ranking.scored:
        click.echo("score: calibrated relevance, 0.1 per standard deviation above a random paper of the store (the "
                   "floor is relevance_floor); the number in a reason: how close the paper is to that interest or "
                   "paper (cosine similarity, 0 to 1); the interest named first is the one the paper stands out "
                   "for most against the store")


def _find_in_ranking(settings, store, prof, result, query: str, limit: int, stored: list[dict]) -> None:
    """`digest rank --find`: the matching candidates with their place and verdict, then why each stored paper
    that matches (``stored``: ``Store.papers_matching``) but is not ranked is not."""
    from .pipeline import matches, verdict, why_not_candidate

    scored = result.ranking.scored
    found = [(n, item) for n, item in enumerate(scored, 1) if matches(item.paper, result.id_of(item.paper), query)]
    for n, item in found[:limit]:
        click.echo(f"#{n} of {len(scored)}  score {_score(item)}  {_clipped(item.paper.title)}")
        click.echo(f"{'':4}why: {item.reason}")
        click.echo(f"{'':4}{verdict(result, item)}")
    if len(found) > limit:
        click.echo(f"... and {_n(len(found) - limit, 'more candidate')} matching {query!r} (--limit)")
    ranked = {result.id_of(item.paper) for item in scored}
    others = [row for row in stored if row["id"] not in ranked]
    for row in others:
        click.echo(f"not ranked  {_clipped(row['paper'].title)}")
        click.echo(f"{'':4}{why_not_candidate(store, settings, prof, row)}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show what would go out; send and record nothing.")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path),
              help="Write complete .eml files to this folder instead of using SMTP. This is the day's delivery: "
                   "no email follows for it (--dry-run previews instead).")
@click.option("--user", "users", multiple=True, help="Only this user (repeatable).")
@click.option("--any-day", is_flag=True,
              help="Also users whose frequency skips today (e.g. frequency = \"weekdays\" on a Sunday).")
@click.option("--retry-failed", is_flag=True,
              help="Try again today's digests the mail server refused permanently (after fixing the mailbox or "
                   "the server; a corrected `email` in the profile is tried again without it); with --user, also "
                   "that user's digest the server did not confirm (recorded as sent), when it did not arrive.")
@click.pass_context
def send(ctx: click.Context, dry_run: bool, outbox: Path | None, users: tuple[str, ...], any_day: bool,
         retry_failed: bool) -> None:
    """Send every due digest once (one per user and local calendar day).

    Due: today (the user's local day) is one of their profile's `frequency` days, and no digest went out for
    it yet. A digest already sent for the user's current day is never sent again; one that failed for a
    transient reason is retried (same papers, same Message-ID). --dry-run ranks and renders but sends and
    records nothing; --outbox writes complete .eml files (and .html to look at) instead of using SMTP, and that
    counts as the day's delivery (no email follows for it).
    Run it from cron at any time of day; `digest run` also waits for each user's send_at.

    Example:

    \b
        digest send --dry-run
        digest send --outbox /tmp/digests --user ada
    """
    from datetime import UTC, datetime

    from .pipeline import deliver_all, embed_new, load_user_profiles
    from .profiles import is_send_day, local_period

    settings = _settings(ctx)
    if outbox is None and settings.outbox:
        outbox = Path(settings.outbox)
    if outbox is None and not dry_run and not settings.smtp.host:
        raise ConfigError(f"smtp.host is not set in {settings.source_label}, so digests cannot be sent; set [smtp] host "
                          "(see config.example.toml); `digest send --dry-run` previews them (sends and records "
                          "nothing); `--outbox DIR` writes them to files instead, and that counts as the day's "
                          "delivery: no email follows for that day")
    missing = None if dry_run else _no_store(ctx, settings)
    if missing:
        # a new store has no papers: what it would send is a quiet-day note to everyone (and under a mistyped
        # --data-dir, a second digest of the day signed with a new key), so nothing is made or sent
        raise DigestError(f"{missing}; nothing sent: a digest needs papers, which `digest poll` (or `digest "
                          "ingest FILE`) reads in first")
    store = _store(settings, read_only=dry_run)  # a preview creates no store where there is none
    loaded = load_user_profiles(store, settings)
    files = [str(settings.profiles_path / f"{u}.toml") for u in users]
    shown = [e for e in loaded.errors if not users or any(str(e).startswith(f) for f in files)]  # --user: theirs
    for error in shown:
        click.secho(f"profile error: {error}", fg="red", err=True)
    profiles = [p for u, p in loaded.profiles.items() if not users or u in users]
    unknown = set(users) - set(loaded.profiles)
    broken = sorted(unknown & set(loaded.unserved))
    if broken:
        raise DigestError(f"{', '.join(broken)}: the profile has the error above and no earlier good version to "
                          "serve meanwhile; fix it (`digest check` shows every problem) and run again")
    if unknown:
        raise DigestError(f"no profile for {', '.join(sorted(unknown))} in {settings.profiles_path}/")
    now = datetime.now(UTC)
    resting = [] if any_day else [p for p in profiles if not is_send_day(p, now)]
    for p in resting:
        day = datetime.fromisoformat(local_period(p, now)).strftime("%A")
        click.echo(f"  {p.user}: not a send day (frequency = \"{p.frequency}\", and it is {day} in {p.timezone}); "
                   "--any-day sends it anyway")
    profiles = [p for p in profiles if p not in resting]
    if retry_failed and not dry_run:
        for p in profiles:
            row = store.digest_for(p.user, local_period(p, now))
            # a digest the server did not confirm may well have arrived: sent again only for a reader named
            # (one who says it did not come), never for everyone by a cron job's --retry-failed
            if store.reopen_failed(p.user, local_period(p, now), "refused or not confirmed earlier; tried again "
                                   "(--retry-failed)", unconfirmed=bool(users)):
                what = "refused" if row["status"] == "failed" else "not confirmed by the server"
                click.echo(f"  {p.user}: the digest {what} earlier today is tried again")
    deliveries = []
    if profiles:
        embedder = _embedder(settings)
        embed_new(store, embedder, settings, _embed_progress(settings))
        deliveries = deliver_all(store, embedder, settings, profiles, outbox=outbox, dry_run=dry_run, now=now)
    for d in deliveries:
        _print_delivery(d)
    if shown:
        # the others were served; the exit status still tells cron or a systemd timer that a file needs fixing
        click.secho(f"{_n(len(shown), 'profile error')} (above): the rest of the run went on; fix the "
                    f"{'file' if len(shown) == 1 else 'files'} (`digest check` shows every problem)", fg="red",
                    err=True)
    # a digest refused for today stays a failure on every run of the day, so cron reports it each time
    if shown or any(d.status in ("failed", "retry") or (d.status == "already" and d.error) for d in deliveries):
        sys.exit(1)


@cli.command()
@click.option("--profiles", "profiles_dir", type=click.Path(path_type=Path),
              help="Profiles directory to check (default: profiles_dir from the config).")
@click.option("--connect", is_flag=True,
              help="Also log in to the IMAP and SMTP servers and look at the folders a poll uses, changing "
                   "nothing (no mail read, marked or sent, no folder made).")
@click.pass_context
def check(ctx: click.Context, profiles_dir: Path | None, connect: bool) -> None:
    """Validate config.toml and every profile; print each problem with its file and key.

    Example:

        digest check --profiles profiles/

        digest check --connect     # before the first poll: login, folders, move targets, SMTP
    """
    from .config import config_problems
    from .embed import model_problems
    from .pipeline import profile_addresses, profile_anchors
    from .profiles import EXAMPLE_EMAILS, load_profiles

    settings = _settings(ctx)
    given = ctx.obj.get("data_dir_from")
    config_errors, config_warnings = config_problems(settings, given)
    # a --data-dir (or $DIGEST_DATA_DIR) that cannot hold the database is no fault of the config file
    file_errors = [e for e in config_errors if not (given and e.startswith((f"{given} ", f"{given}=")))]
    click.echo(f"config: {settings.source}: {'ok' if not file_errors else 'broken (the errors below)'}")
    problems = model_problems(settings.model.name, settings.model.offline)
    if not problems:
        click.echo(f"model: {settings.model.name}: installed")
    directory = profiles_dir or settings.profiles_path
    # the profiles the service reads: with their last good versions, so a contested address is judged as the
    # service judges it (the established user keeps it)
    from .store import Store, another_users_database

    # another user's database: said, and the rest checked without it (opening it is what must not happen)
    unwritable = another_users_database(settings.db_path)
    store = Store(None) if unwritable else _store(settings, read_only=True)
    store_errors = [unwritable] if unwritable else _store_problems(settings, store)
    last_good = store.profile_texts() if Path(directory).resolve() == settings.profiles_path.resolve() else None
    try:
        loaded = load_profiles(directory, last_good)
    except ProfileError as exc:  # no profiles folder: what is wrong with the config is still worth saying
        found, server_errors = _connect_checks(settings) if connect and not config_errors else ([], [])
        for line in found:
            click.echo(line)
        for warning in [*config_warnings, *problems]:
            click.secho(f"warning: {warning}", fg="yellow")
        for error in [*config_errors, *store_errors, *server_errors, exc]:
            click.secho(f"error: {error}", fg="red")
        sys.exit(exc.exit_code)  # as for any other command: where the profiles are is the setup's error
    if last_good is not None and not store_errors:
        _keep_last_good(store, loaded.texts)
    addresses = profile_addresses(store)
    empty, tips = [], []
    # what each profile ranks with: seeds given by an id only, which the store does not know yet, are unused
    # until their paper arrives (said below)
    anchors = {user: profile_anchors(store, profile) for user, profile in loaded.profiles.items()}
    # a file that did not load and has no earlier good version: a line of its own too, in its place by name
    for user in sorted([*loaded.profiles, *loaded.unserved]):
        if user in loaded.unserved:
            click.echo(f"profile {user}: broken (the error below); nothing serves it meanwhile (no earlier good "
                       "version)")
            continue
        profile = loaded.profiles[user]
        library = f", {_n(len(profile.library_seeds), 'library paper')}" if profile.library else ""
        state = "ok" if profile.interests or profile.seeds or profile.library_seeds else "nothing to rank with"
        if state == "ok" and not anchors[user][0]:
            state = "nothing to rank with yet"
            empty.append(f"{profile.path}: no interests, and no seed the ranking can use yet (the warning above), "
                         "so every paper would rank as \"no strong match\" and each digest be a quiet-day note "
                         "until a seed's paper arrives; add the seed's title, or [[interests]]")
        if user in loaded.stale:
            state = f"broken (the error below); its last good version (to {profile.email}) serves meanwhile"
        elif state == "ok" and any(_library_error(e, profile.path) for e in loaded.errors):
            state = "a library file is unusable (the error below); the rest of the profile serves"
        click.echo(f"profile {user}: {state} ({_n(len(profile.interests), 'interest')}, {_n(len(profile.seeds), 'seed')}{library}, "
                   f"{profile.frequency} at {profile.send_at} {profile.timezone}){_paused(store, profile, addresses)}")
        n_papers = len(profile.seeds) + len(profile.library_seeds)
        if state == "ok" and n_papers < 10 and not profile.library:
            tips.append(f"{user}: {_n(n_papers, 'seed paper')}; papers the user saved teach the ranking most: "
                        "add [[seeds]], or point `library` at an export of their reference manager (on the "
                        "benchmark, a whole library as seeds instead of 5 papers: mean P@10 0.607 -> 0.670)")
        if state == "nothing to rank with":
            empty.append(f"{profile.path}: no interests, no seeds and no library paper could be read, so every paper "
                         "would rank as \"no strong match\"; give the library file papers (or fix it) or add "
                         "[[interests]]")
    unresolved = [note for user in loaded.profiles for note in anchors[user][2]]
    warnings = [*config_warnings, *problems, *loaded.warnings, *unresolved, *empty,
                *_new_reader_warnings(store, loaded.profiles, loaded.stale)]
    if settings.smtp.host and not settings.outbox:
        # example.org, .test, .invalid... never receive mail (RFC 2606): the example profiles left in place
        warnings += [f"{profile.path}: email: {profile.email} is a reserved example address, so a sent digest "
                     "bounces; put the user's real address there"
                     + (f", or move the example profiles out of {directory}" if profile.email in EXAMPLE_EMAILS else "")
                     for profile in loaded.profiles.values() if _reserved_address(profile.email)]
    found, server_errors = _connect_checks(settings) if connect and not config_errors else ([], [])
    if connect and config_errors:
        found.append("servers: not tried (--connect): fix the config errors below first")
    for line in found:
        click.echo(line)
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow")
    for tip in tips:
        click.echo(f"tip: {tip}")
    for error in [*config_errors, *store_errors, *loaded.errors, *server_errors]:
        click.secho(f"error: {error}", fg="red")
    if loaded.errors or config_errors or store_errors or server_errors:
        sys.exit(1)
    if not loaded.profiles:
        raise DigestError(f"{directory}: no profiles (*.toml) found; copy profiles/ada.toml as a start")


def _store_problems(settings, store) -> list[str]:
    """`check`: the database file is whole (SQLite's quick_check reads every page) and writable; prints its line
    when it is (or that there is none yet), returns the errors when not."""
    import os
    import sqlite3

    from .store import damaged_message

    db = settings.db_path
    if not db.exists():
        click.echo(f"store: {db}: none yet (the first `digest poll`, `digest ingest` or `digest run` makes it); if "
                   "you meant an existing store, check the data directory (--data-dir, DIGEST_DATA_DIR, data_dir)")
        return []
    try:
        verdict = store.db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        lines = [line for line in verdict.splitlines() if line.strip() and not line.startswith("***")] or [verdict]
        more = f" and {len(lines) - 1} more" if len(lines) > 1 else ""
        return [damaged_message(db, sqlite3.DatabaseError(f"SQLite's check: {lines[0]}{more}"))]
    if not os.access(db.parent, os.W_OK):  # (the database's own files were checked before it was opened)
        return [f"{db.parent}: not writable by this user, so nothing can be recorded (polls, digests sent, "
                "votes); give this user write access to it (the database file and its folder), or run digest as "
                "the user who owns it"]
    click.echo(f"store: {db}: ok ({_n(store.count_papers(), 'paper')}, {db.stat().st_size / 1e6:.1f} MB)")
    return []


def _connect_checks(settings) -> tuple[list[str], list[str]]:
    """`check --connect`: what the IMAP and SMTP servers say to the settings (lines found, problems)."""
    import asyncio
    import concurrent.futures

    from .errors import DeliveryError, MailboxError
    from .ingest import check_mailbox
    from .send import check_smtp

    def imap() -> tuple[list[str], list[str]]:
        if not settings.imap.host:
            return ["imap: not set up (imap.host is empty): alerts come in with `digest ingest PATH` only"], []
        try:
            return check_mailbox(settings)
        except (ConfigError, MailboxError) as exc:
            return [], [str(exc)]

    def smtp() -> tuple[list[str], list[str]]:
        if settings.outbox:
            return [f"smtp: not used: digests are written to {settings.outbox} (outbox)"], []
        if not settings.smtp.host:
            return [], []
        try:
            return [asyncio.run(check_smtp(settings.smtp))], []
        except DeliveryError as exc:
            return [], [str(exc)]

    # both servers at once: a server that never answers (a wrong port or security mode) costs its timeout once
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result() for f in [pool.submit(imap), pool.submit(smtp)]]
    return [line for lines, _ in results for line in lines], [p for _, trouble in results for p in trouble]


def _paused(store, profile, addresses) -> str:
    """`digest check`'s note on a profile whose digests do not go out: paused = true in the file, or an unsubscribe
    link (also one followed under an earlier file name of the profile, as delivery sees it); else "".
    ``addresses``: ``pipeline.profile_addresses(store)``, read once for every profile."""
    from .pipeline import earlier_names

    if profile.paused:
        return "; paused: paused = true in the file (set it to false to resume)"
    names = [profile.user, *earlier_names(store, profile, addresses)]
    pause = next(filter(None, (store.pause_of(u) for u in names)), None)
    if pause is None:
        return ""
    return (f"; paused: unsubscribed by link ({pause['via']}) on {pause['paused_at'][:10]}; "
            f"`digest resume {profile.user}` to resume")


def _new_reader_warnings(store, profiles: dict, stale) -> list[str]:
    """A profile whose digests went to another address than the one it names now: the same reader who moved, or a
    file name given to someone else, whom the earlier reader's links (votes, unsubscribe) would still act for."""
    from .config import without_tag

    warnings = []
    for user, profile in sorted(profiles.items()):
        last = None if user in stale else store.last_address(user)
        if last is None or without_tag(last[0].lower()) == without_tag(profile.email.lower()):
            continue
        warnings.append(f"{profile.path}: email: {profile.email}, but this profile's digests went to {last[0]} "
                        f"(the last on {last[1]}). The same reader at a new address: nothing to do, their votes and "
                        "history go on. A new reader given this file name: rename the file (the file name is the "
                        f"user id), or the links in the digests {last[0]} received still vote and unsubscribe for "
                        "this profile")
    return warnings


def _reserved_address(address: str) -> bool:
    domain = address.rsplit("@", 1)[-1].lower().rstrip(".")
    return domain in ("example.org", "example.com", "example.net") or \
        domain.endswith((".example.org", ".example.com", ".example.net")) or \
        domain.rsplit(".", 1)[-1] in ("example", "test", "invalid")


# ---- poll: the IMAP poller (owner: poller) ---------------------------------------------------------------
def _print_poll(report) -> None:
    """One line per folder (red on stderr when it has an error), then a connection error that no folder line
    carries (e.g. another poll holds the lock)."""
    for folder in report.folders:
        if folder.error:
            click.secho(folder.summary(), fg="red", err=True)
        else:
            click.echo(folder.summary())
        for problem in folder.problems:
            click.secho(f"  {problem}", fg="yellow")
    if report.error and not any(folder.error == report.error for folder in report.folders):
        click.secho(f"error: {report.error}", fg="red", err=True)


@cli.command()
@click.option("--folder", "folders", multiple=True,
              help="Poll this folder instead of imap.folders (repeatable).")
@click.option("--once/--watch", default=True, show_default=True,
              help="One pass and exit, or keep polling: with IMAP IDLE if imap.idle = true, else every "
                   "imap.poll_minutes.")
@click.option("--rescan", is_flag=True,
              help="Look at every unmarked message again, not only those after the last UID read "
                   "(e.g. after raising imap.max_message_bytes). Nothing is stored twice.")
@click.pass_context
def poll(ctx: click.Context, folders: tuple[str, ...], once: bool, rescan: bool) -> None:
    """Read new paper alerts from the IMAP mailbox into the store.

    Mail is read with BODY.PEEK (never marked as read). Alerts are flagged imap.processed_flag (or moved to
    imap.processed_folder with mark = "move") once their papers are stored; alerts that cannot be parsed
    are quarantined; other mail is left alone. Prints one line per folder; exits 1 on a connection, login
    or folder error.

    Example:

    \b
        DIGEST_IMAP_PASSWORD=... digest poll
        digest poll --folder INBOX --folder Alerts
        digest poll --watch
    """
    import signal
    import threading

    from .ingest import check_settings, idle_wait, poll_all

    settings = _settings(ctx)
    if not settings.db_path.exists():
        check_settings(settings, folders or settings.imap.folders)  # no store is created for a poll that cannot run
    if not ctx.obj.get("log_level"):
        # the per-folder lines below say what the poller would log at INFO; keep its warnings and errors
        logging.getLogger("digest.ingest").setLevel(logging.WARNING)
        logging.getLogger("digest.ingest.summary").setLevel(logging.CRITICAL)  # printed below, once
    store = _new_or_existing_store(ctx, settings)
    if once:
        report = poll_all(store, settings, folders=folders or None, rescan=rescan)
        _print_poll(report)
        if not report.ok:
            sys.exit(1)
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    wait = settings.imap.poll_minutes * 60
    click.echo(f"watching {', '.join(folders or settings.imap.folders)} on {settings.imap.host} "
               f"({'IMAP IDLE' if settings.imap.idle else f'every {settings.imap.poll_minutes:g} min'}); "
               "Ctrl-C to stop")
    while not stop.is_set():
        report = poll_all(store, settings, stop=stop, folders=folders or None, rescan=rescan)
        rescan = False
        _print_poll(report)
        if stop.is_set():
            break
        if settings.imap.idle:
            idle_wait(settings, wait, stop=stop, folders=folders or settings.imap.folders, since=report)
        else:
            stop.wait(wait)


# -- feedback: serve, votes, resume (owner: feedback) ------------------------------------------------------
@cli.command()
@click.option("--host", default=None, help="Address to bind (default: web.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port to listen on (default: web.port, 8025).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the feedback web server: the 👍 / 👎 / unsubscribe links of the digests.

    Binds to 127.0.0.1 by default; expose it through a reverse proxy and set web.base_url to the public
    URL (the links in emails are built from it). `digest run` starts the same server itself.

    Example:

    \b
        digest serve --port 8025
        curl -s http://127.0.0.1:8025/healthz
    """
    from .feedback import build_server
    from .schedule import bind_port

    settings = _settings(ctx)
    if settings.db_path.exists():  # none yet: the first `digest poll` or `digest run` makes it
        from .feedback import read_only_fix
        from .store import Store, unwritable_files

        # the files' permissions first: opening the database as a user who may not write it leaves -wal and -shm
        # files of that user in a folder anyone may write, which then lock its owner out
        problem = unwritable_files(settings.db_path)
        if problem is None:
            store = Store(settings.db_path, create=False)
            try:
                problem = store.write_problem()  # and what only a write tells: a read-only mount, say
            finally:
                store.close()
        if problem:  # every page would show, and every vote fail
            raise StoreError(f"{settings.db_path}: {problem}; {read_only_fix(problem)}")
    # our log format (log_config=None), and not uvicorn's start/stop lines beside the banner below (its
    # warnings and errors still show; --log-level DEBUG shows everything)
    server = build_server(settings, host, port, log_config=None)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # bound before saying it serves: a port in use is one clear error line, not a traceback after the banner
    sock = bind_port(server.config.host, server.config.port,
                     "give a free one with --port (or set web.port), or stop what listens there",
                     "give --host an address of this machine, such as 127.0.0.1 (or set web.host)")
    click.echo(f"feedback server on http://{server.config.host}:{server.config.port} "
               f"(links in emails point to {settings.web.base_url}); Ctrl-C stops it")
    server.run(sockets=[sock])


@cli.command()
@click.argument("user")
@click.option("--history", is_flag=True, help="Every change (votes, changed votes, undos), oldest first.")
@click.option("--bib", is_flag=True, help="Print the 👍 papers as BibTeX instead, for a reference manager.")
@click.pass_context
def votes(ctx: click.Context, user: str, history: bool, bib: bool) -> None:
    """List a user's votes: the paper, 👍 or 👎, when, and how (web link or email).

    Votes live in the database, not in the profile: editing or replacing the profile file keeps them.
    --bib prints the papers with a 👍 as a BibTeX file (import it into Zotero, JabRef, Mendeley...).

    Example:

    \b
        digest votes ada
        digest votes ada --history
        digest votes ada --bib > ada-liked.bib
    """
    from .pipeline import reader_names, reader_votes

    settings = _settings(ctx)
    store = _existing_store(ctx, settings)
    _check_user(settings, store, user)
    # the votes given under an earlier file name of the profile count too (as in the ranking), marked with it
    names = reader_names(store, settings, user)
    current = reader_votes(store, names)
    if bib:
        from .library import to_bibtex

        liked = [v.paper_id for _, v in current if v.value > 0]
        found = store.get_papers([store.resolve_id(pid) for pid in liked])
        click.echo(to_bibtex([found[store.resolve_id(pid)] for pid in liked if store.resolve_id(pid) in found]),
                   nl=False)
        click.echo(f"{user}: {len(found)} liked {'paper' if len(found) == 1 else 'papers'} as BibTeX", err=True)
        return
    marks = {1: "👍", -1: "👎", 0: "undo"}
    if history:
        events = sorted(((e, name) for name in names for e in store.vote_events(name)),
                        key=lambda pair: (pair[0]["at"] or "", pair[0]["id"]))  # in the order they were made
        rows = [(e["paper_id"], e["value"], e["at"], e["via"], name) for e, name in events]
    else:
        rows = sorted(((v.paper_id, v.value, v.created_at, v.via, name) for name, v in current),
                      key=lambda r: r[2] or "")  # oldest first, whichever name gave them
    papers = store.get_papers([pid for pid, *_ in rows])
    if not rows:
        click.echo(f"{user}: no votes yet")
        return
    click.echo(f"{user}: {_n(len(rows), 'change' if history else 'vote')} (times in UTC)")
    for pid, value, at, via, name in rows:
        paper = papers.get(store.resolve_id(pid))
        title = " ".join(paper.title.split()) if paper else f"({pid}: no longer in the store)"
        title = title if len(title) <= 90 else title[:89].rstrip() + "…"
        given = f"  (as {name}: an earlier file name of this profile)" if name != user else ""
        click.echo(f"  {marks[value]:4} {(at or '')[:16].replace('T', ' ')}  {via:5}  {title}{given}")
    pause = store.pause_of(user)
    if pause:
        since = pause["paused_at"][:16].replace("T", " ")
        click.secho(f"{user}'s digests are paused since {since} UTC ({pause['via']}); "
                    f"`digest resume {user}` turns them back on", fg="yellow")


@cli.command()
@click.argument("user")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The digest of this day (default: the latest sent).")
@click.pass_context
def page(ctx: click.Context, user: str, day: str | None) -> None:
    """Print the link to a user's digest page: the digest with its runners-up, to read again and vote on.

    The same page the digest's "Open in your browser" link opens; it works while `digest serve` (or
    `digest run`) answers at web.base_url. Without --date, the latest digest that went out.

    Example:

    \b
        digest page ada
        digest page ada --date 2026-11-28
    """
    from datetime import date

    from .pipeline import reader_names, web_link
    from .render import date_label

    settings = _settings(ctx)
    store = _existing_store(ctx, settings)
    _check_user(settings, store, user)
    sent = store.sent_digests(reader_names(store, settings, user))
    if day is not None:
        try:
            wanted = date.fromisoformat(day).isoformat()
        except ValueError:
            raise DigestError(f"--date {day!r}: not a date; write it like 2026-11-28") from None
        sent = [d for d in sent if d["period"] == wanted]
    if not sent:
        which = f"on {day}" if day else "yet"
        raise DigestError(f"{user}: no digest with papers went out {which}; `digest status` lists the last digests")
    row = sent[-1]
    more, below = len(store.digest_items(row["id"], more=True)), len(store.digest_items(row["id"], below=True))
    click.echo(f"{user}: the digest of {date_label(date.fromisoformat(row['period']))} "
               f"({_n(row['n_items'], 'paper')}" + (f", {more} more above the floor" if more else "")
               + (f", the best {below} below it" if below else "") + ")")
    click.echo(web_link(settings, settings.web.secret_key(settings.data_path), user, "digest", str(row["id"])))


@cli.command()
@click.argument("user")
@click.pass_context
def resume(ctx: click.Context, user: str) -> None:
    """Resume the digests of a user who paused them with an unsubscribe link.

    A pause set by `paused = true` in the profile file is the user's own switch: edit the file for that.

    Example:

        digest resume ada
    """
    settings = _settings(ctx)
    store = _existing_store(ctx, settings)  # no store: nobody can have unsubscribed there
    _check_user(settings, store, user)
    resumed = store.resume_user(user, via="cli")
    profile_file = settings.profiles_path / f"{user}.toml"
    if profile_file.exists():
        from .pipeline import earlier_names

        with contextlib.suppress(DigestError):  # an unsubscribe under an earlier file name of this address
            for earlier in earlier_names(store, _load_profile(settings, user)):
                resumed = store.resume_user(earlier, via="cli") or resumed
    if resumed:
        click.echo(f"{user}: digests resumed; the next one goes out at its usual time")
    else:
        click.echo(f"{user}: was not paused by an unsubscribe link; nothing to do")
    profile_path = settings.profiles_path / f"{user}.toml"
    if profile_path.exists():
        try:
            if _load_profile(settings, user).paused:
                click.secho(f"note: {profile_path} says paused = true; set it to false to get digests",
                            fg="yellow")
        except DigestError as exc:
            click.secho(f"note: {exc}", fg="yellow")


# -- the daemon and its status (owner: scheduler) --------------------------------------------------------------
def _daemon_parts(settings) -> dict:
    """The outside pieces of `digest run`: the IMAP poller and the feedback web app."""
    import importlib.util

    from .ingest import idle_wait, poll_all

    parts: dict = {"poll": poll_all, "wait_for_mail": idle_wait}
    if settings.web.enabled and importlib.util.find_spec("digest.feedback") is not None:
        from .feedback import build_server

        # our log format and levels (log_config=None); SIGTERM belongs to the daemon, not uvicorn
        parts["web"] = build_server(settings, handle_signals=False, log_config=None)
    return parts


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: poll the mailbox, send each digest at its local time, serve feedback links.

    One long-running process. Every user's digest goes out at send_at in their own timezone; a digest
    missed while the daemon was down is sent at start if it was due within schedule.grace_minutes.
    Profiles are re-read when they change. SIGTERM or Ctrl-C stops it cleanly. See docs/running.md
    for a systemd unit.

    Example:

        digest --config /etc/digest/config.toml --data-dir /var/lib/digest run
    """
    from .schedule import preflight, run_daemon

    settings = _settings(ctx)
    preflight(settings)  # a refused start leaves nothing behind (no new data directory, database or key)
    # a first start, or a mistyped --data-dir: said before anything is made
    _say_new_store(ctx, settings, "stop this (Ctrl-C) and check the data directory")
    sys.exit(run_daemon(settings, **_daemon_parts(settings)))


@cli.command()
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx: click.Context, dest: Path | None) -> None:
    """Copy the database (papers, votes, digests sent, history) to one file, safely while digest runs.

    DEST is a file or a folder; default: the folder backups/ in data_dir, with the time in the file's name.
    The copy is checked by SQLite before it takes its name. To restore one: stop digest, delete digest.db-wal
    and digest.db-shm in data_dir, copy the backup over digest.db.

    Example:

    \b
        digest backup
        digest backup /mnt/nas/digest.db      # e.g. nightly from cron: the file is replaced
    """
    from datetime import UTC, datetime

    settings = _settings(ctx)
    store = _existing_store(ctx, settings)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"digest-{stamp}.db"
    if dest is None:
        dest = settings.data_path / "backups" / name
        try:
            dest.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise DigestError(f"{dest.parent}: cannot create it ({exc.strerror}); name a folder to write the "
                              "copy to: digest backup DEST") from None
    elif dest.is_dir():
        dest = dest / name
    if dest.resolve() == settings.db_path.resolve():
        raise DigestError(f"{dest}: that is the database itself; name another file or folder")
    if not dest.parent.is_dir():
        raise DigestError(f"{dest.parent}: no such folder; create it, or name an existing one")
    replaced = dest.exists()
    try:
        counts = store.backup(dest)
    finally:
        store.close()
    size = dest.stat().st_size / 1e6
    click.echo(f"{'replaced' if replaced else 'wrote'} {dest} ({size:.1f} MB, checked): "
               f"{_n(counts['papers'], 'paper')}, {_n(counts['votes'], 'vote')} "
               f"({_n(counts['vote_events'], 'vote event')}), {_n(counts['digests'], 'digest')}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show what the daemon did and will do: last poll, next digest per user, counts, recent errors.

    Reads the database and the profiles; works whether or not `digest run` is running.

    Example:

    \b
        digest status
        digest status --json | jq '.users[] | {user, next}'
    """
    from .schedule import status_report

    settings = _settings(ctx)
    store = _store(settings, read_only=True)
    report = status_report(settings, store)
    # a fresh install has no store yet, but neither has a mistyped --data-dir: say which directory holds none
    report["store_exists"] = settings.db_path.exists()
    if not report["store_exists"]:
        report["store_note"] = _no_store(ctx, settings)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    _print_status(report)


# the store's message states as `digest status` names them
# a message state as `digest status` names it, (one, several): the words `digest ingest` / `poll` print too
MESSAGE_STATES = {"ingested": ("alert", "alerts"), "not_alert": ("not a paper alert", "not paper alerts"),
                  "duplicate": ("already seen", "already seen"), "failed": ("failed", "failed"),
                  "feedback": ("vote reply", "vote replies"), "feedback_rejected": ("refused vote reply",
                                                                                   "refused vote replies")}


def _mailbox_label(mailbox: str) -> str:
    """``imap://user@host/FOLDER`` -> ``host/FOLDER`` (without the user name); ``file:PATH`` -> ``PATH``."""
    return mailbox.removeprefix("imap://").rsplit("@", 1)[-1].removeprefix("file:")


def _print_status(r: dict) -> None:
    from datetime import datetime

    from .schedule import describe_delta

    now = datetime.fromisoformat(r["now"])

    def ago(stamp: str | None) -> str:
        return describe_delta(datetime.fromisoformat(stamp) - now) if stamp else "never"

    def stamp(iso: str) -> str:
        return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M} UTC"

    daemon = r["daemon"]
    click.echo(f"config: {r['config']}   data: {r['data_dir']}   profiles: {r['profiles_dir']}")
    if r.get("store_note"):
        click.secho(f"data: {r['store_note']}", fg="yellow")
    click.echo(f"daemon: running (pid {daemon.get('pid')}, started {ago(daemon.get('started_at'))})" if daemon
               else "daemon: not running (start it with `digest run`)")
    if not r["polls"]:
        click.echo("last poll: never" + (" (the papers came from files, read by `digest ingest` or `digest demo`; "
                                         "`digest poll` reads the mailbox of config.toml's [imap])"
                                         if r["counts"]["papers"] else
                                         " (read alerts in with `digest poll` or `digest ingest PATH`; the demo's "
                                         "store is `--data-dir demo-data`)"))
    for p in r["polls"]:
        where = _mailbox_label(p["mailbox"])
        result = p["result"] or "no result recorded"
        # the result line starts with the folder (which may hold "/": "Alerts/arXiv"): say it once
        folder = where.split("/", 1)[-1] if p["mailbox"].startswith("imap://") else where.rsplit("/", 1)[-1]
        result = result.removeprefix(f"{folder}: ")
        click.echo(f"last poll: {where}: {ago(p['at'])}: {result}")
    counts = r["counts"]
    messages, digests = counts["messages"], counts["digests"]
    order = list(MESSAGE_STATES)  # alerts first, as ingest says them
    in_order = sorted(messages.items(), key=lambda sn: order.index(sn[0]) if sn[0] in order else len(order))
    click.echo(f"papers: {counts['papers']}   messages: {sum(messages.values())} "
               f"({', '.join(f'{n} {MESSAGE_STATES.get(s, (s, s))[n != 1]}' for s, n in in_order) or 'none'})")
    for state, key, listed in (("failed", "error", r.get("failed_messages", [])),
                               ("read in part", "warning", r.get("partial_messages", []))):
        for m in listed[:5]:
            where = _mailbox_label(m["mailbox"])
            # a local file's "UID" is a hash of its content: its name says which it is
            local = m["mailbox"].startswith("file:")
            which = f"{where} UID {m['uid']}" if m["uid"] and m["uid"] > 0 and not local else where
            about = f" ({m['subject'] or m['sender']})" if m["subject"] or m["sender"] else ""
            click.echo(f"  {state}: {which}{about}: {m[key]}")
        if len(listed) > 5:
            click.echo(f"  ... and {len(listed) - 5} more (`digest status --json` lists them all)")
    pending = sum(digests.get(s, 0) for s in ("claimed", "sending", "retry"))
    click.echo(f"digests: {sum(digests.values())} ({', '.join(f'{n} {s}' for s, n in digests.items()) or 'none'})"
               + (f"   pending: {pending}" if pending else ""))
    for d in r.get("orphaned_digests", []):
        click.echo(f"  {d['user']}'s {d['period']} digest ({d['status']}): no profile {d['user']}.toml any more, so "
                   f"nothing sends it; put the file back to send it, once")
    n = counts["vectors"]
    click.echo(f"store: {r['store_bytes'] / 1e6:.1f} MB   embedded: {n} text{'' if n == 1 else 's'} with {r['model']}")
    click.echo("")
    if not r["users"]:
        click.echo(f"users: none (add {r['profiles_dir']}/NAME.toml)")
    for u in r["users"]:
        flag = "  [profile broken: using its last good version]" if u["stale"] else ""
        click.echo(f"{u['user']} <{u['email']}>: {u['frequency']} at {u['send_at']} {u['timezone']}{flag}")
        if u["paused"]:
            click.echo("  next: paused (set paused = false to resume)")
        elif u["unsubscribed"]:
            click.echo(f"  next: none: unsubscribed by link ({u['unsubscribed']['via']}) "
                       f"{ago(u['unsubscribed']['paused_at'])}; `digest resume {u['user']}` resumes")
        else:
            click.echo(f"  next: {u['next']}")
        last = u.get("last")
        if last:
            written = last["status"] == "sent" and last.get("path")  # to an outbox file, not mailed
            line = f"  last: {last['period']} {'written' if written else last['status']}"
            if last["n_items"] == 0 and last["status"] == "sent":  # "sent, 0 papers" read as a failure
                seen = last.get("n_candidates") or 0
                line += (f", a quiet-day note (none of {_n(seen, 'recent paper')} cleared the bar)" if seen
                         else ", a quiet-day note (no new papers had arrived)")
            elif last["n_items"] is not None:
                line += f", {_n(last['n_items'], 'paper')}"
            if last["sent_at"]:
                line += f", at {stamp(last['sent_at'])}"
            if written:
                line += f" to {last['path']}"
            if last.get("as_user"):
                line += f" (as {last['as_user']}: an earlier file name of this profile)"
            if last["error"]:
                line += f": {last['error']}"
            if last.get("claim") == "dead":
                # no live run holds it: a run died (kill -9, a crash) while sending
                line += " (its run stopped before it finished; the next `digest run` or `digest send` sends it, once)"
            doubt = last["status"] == "sent" and (last["error"] or "").startswith("unconfirmed")
            click.secho(line, fg="red" if last["status"] in ("failed", "retry") else "yellow" if doubt else None)
        else:
            click.echo("  last: none yet")
        click.echo(f"  waiting: {u['waiting']} recent papers not yet sent or voted on")
    for error in r["profile_errors"]:
        click.secho(f"profile error: {error}", fg="red")
    if r["recent_errors"]:
        click.echo("")
        click.echo("recent errors:")
        for e in r["recent_errors"]:
            who = f" {e['user']}" if e["user"] else ""
            done = e.get("resolved")
            fixed = f" (resolved: {done['by']}{' ' + stamp(done['at']) if done.get('at') else ''})" if done else ""
            click.echo(f"  {stamp(e['at'])} {e['level']} {e['component']}{who}: {e['message']}{fixed}")


def main() -> None:
    cli(prog_name="digest")
