import json
import re
from pathlib import Path

import pytest

from digest.errors import ProfileError
from digest.profiles import frequency_days, load_profile, load_profiles, parse_profile

GOOD = '''name = "Ada"
email = "ada@example.org"
timezone = "Europe/London"
send_at = "07:30"
frequency = "weekly:mon,thu"

[[interests]]
label = "Speculative decoding"
description = "faster LLM inference"
weight = 2
'''


def test_the_example_profiles_are_valid():
    for path in Path("profiles").glob("*.toml"):
        profile = load_profile(path)
        assert profile.interests and profile.seeds
    assert len(list(Path("profiles").glob("*.toml"))) >= 2


def test_send_at_without_its_leading_zero_is_the_same_time(tmp_path):
    assert parse_profile(GOOD.replace('"07:30"', '"7:30"'), tmp_path / "ada.toml").send_at == "07:30"
    with pytest.raises(ProfileError, match=r'send_at: must look like "07:30"'):
        parse_profile(GOOD.replace('"07:30"', '"24:30"'), tmp_path / "ada.toml")


@pytest.mark.parametrize(("given", "meant"), [("7:30pm", "19:30"), ("7 PM", "19:00"), ("12.15 a.m.", "00:15"),
                                              ("12pm", "12:00"), ("11:05 am", "11:05")])
def test_a_twelve_hour_send_at_is_refused_with_its_24_hour_spelling(tmp_path, given, meant):
    with pytest.raises(ProfileError, match=rf'send_at: must look like "07:30", 24-hour HH:MM \(got "{re.escape(given)}"\); '
                                           rf'for example: send_at = "{meant}"$'):
        parse_profile(GOOD.replace('"07:30"', f'"{given}"'), tmp_path / "ada.toml")


def test_a_good_profile_parses_with_defaults(tmp_path):
    profile = parse_profile(GOOD, tmp_path / "ada.toml")
    assert profile.user == "ada"
    assert profile.send_days == (0, 3)
    assert profile.interests[0].weight == 2.0
    assert profile.max_items is None and profile.quiet_day == "note" and not profile.paused


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("send_at", "sendat"), r'ada\.toml:4: sendat: unknown key \(did you mean "send_at"\?\)'),
    (GOOD.replace('"07:30"', '"7h"'), r'ada\.toml:4: send_at: must look like "07:30".*got "7h"'),
    (GOOD.replace("Europe/London", "Mars/Olympus"), r"ada\.toml:3: timezone: unknown IANA time zone"),
    (GOOD.replace("weekly:mon,thu", "fortnightly"), r"frequency: unknown frequency"),
    (GOOD.replace("weight = 2", "weight = -1"), r"interests\[0\]\.weight: must be a number above 0"),
    (GOOD.replace("label =", "lable ="), r'interests\[0\]\.lable: unknown key \(did you mean "label"\?\)'),
    # the boost/mute tables written the other way round: [keywords] boost = [...]
    (GOOD + '[keywords]\nboost = ["diffusion"]\n',
     r'keywords: unknown key \(keywords go under \[boost\] or \[mute\]: write \[boost\] then keywords = '),
    (GOOD + '[author]\nmute = ["Smith"]\n', r'author: unknown key \(authors go under \[boost\] or \[mute\]'),
    (GOOD.replace('email = "ada@example.org"\n', ""), r"email: is required"),
    ("max_items = 0\n" + GOOD, r"max_items: must be a whole number from 1 to 100"),
    ("relevance_floor = 3\n" + GOOD, r"relevance_floor: must be a number from 0 to 1"),
    (GOOD + "paused = true\n", r"interests\[0\]\.paused: unknown key \(paused is a top-level key: move it above"),
    (GOOD + "[boost]\nkeywords = \"diffusion\"\n", r"boost\.keywords: must be a list of strings"),
    (GOOD + "[[seeds]]\nabstract = \"only an abstract\"\n", r"seeds\[0\]: needs an arxiv id, a doi or a title"),
    ('name = "x\n', r"ada\.toml:\d+: not valid TOML \(the line of name\): .*line \d+"),
    # a folder of the zone database is not a zone (zoneinfo raises IsADirectoryError for it)
    (GOOD.replace("Europe/London", "Europe"), r"ada\.toml:3: timezone: unknown IANA time zone 'Europe'"),
    # the zone as written elsewhere (lower case, a slip of the keyboard): the fix is named
    (GOOD.replace("Europe/London", "europe/london"), r"timezone: unknown IANA time zone 'europe/london'; did you "
                                                     r'mean "Europe/London"\?$'),
    (GOOD.replace("Europe/London", "utc"), r'unknown IANA time zone \'utc\'; did you mean "UTC"\?$'),
    (GOOD.replace("Europe/London", "America/New_Yrok"), r'did you mean "America/New_York"\?$'),
    # a city alone, or an abbreviation: the zone to write
    (GOOD.replace("Europe/London", "new york"), r'unknown IANA time zone \'new york\'; did you mean "America/New_York"\?$'),
    (GOOD.replace("Europe/London", "CST"), r'CST is an abbreviation, not a zone: name a city\'s zone, e.g. '
                                           r'"America/Chicago"$'),
    (GOOD.replace('"07:30"', "07:30:00"), r"ada\.toml:4: send_at: must be text in quotes \(got the unquoted 07:30:00\)"),
    # what would break the To: header at send time is refused here, where the user can fix it
    (GOOD.replace('"Ada"', '"Ada\\nLovelace"'), r"ada\.toml:1: name: must be one line"),
    (GOOD.replace('"ada@example.org"', '"ada@@example.org"'), r"ada\.toml:2: email: must be one email address"),
    (GOOD.replace('"ada@example.org"', '"jürgen@example.org"'), r'ada\.toml:2: email: "jürgen@example\.org" has a '
                                                               r"user name in non-ASCII letters, which only mail sent "
                                                               r"with SMTPUTF8 can reach"),
    (GOOD + "[[seeds]]\narxiv = \"221117192\"\n", r"ada\.toml:\d+: seeds\[0\]\.arxiv: is not an arXiv id .*2106\.09685"),
    # a month 13 or 00 is no arXiv id (a slip of a digit): said now, not a seed that never matches a paper
    (GOOD + "[[seeds]]\narxiv = \"2213.17192\"\n", r'seeds\[0\]\.arxiv: is not an arXiv id \(got "2213\.17192"\)'),
    (GOOD + "[[seeds]]\narxiv = \"hep-th/9900001\"\n", r'seeds\[0\]\.arxiv: is not an arXiv id'),
    ("quiet_day = true\n" + GOOD, r'quiet_day: must be a non-empty string \(got true\)'),  # TOML's spelling
    (GOOD + "[[seeds]]\ndoi = \"nonsense\"\n", r'ada\.toml:\d+: seeds\[0\]\.doi: is not a DOI \(got "nonsense"\)'),
])
def test_errors_name_file_key_line_and_fix(tmp_path, text, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, tmp_path / "ada.toml")


def test_an_address_with_an_internationalised_domain_is_kept_in_its_ascii_form(tmp_path):
    # what the SMTP server needs at RCPT (digest does not send SMTPUTF8), and the same mailbox
    profile = parse_profile(GOOD.replace('"ada@example.org"', '"ada@müller.example"'), tmp_path / "ada.toml")
    assert profile.email == "ada@xn--mller-kva.example"
    # IDNA 2008: "ß" stays itself (IDNA 2003, Python's codec, made it "ss": strasse.de, someone else's domain)
    profile = parse_profile(GOOD.replace('"ada@example.org"', '"ada@straße.de"'), tmp_path / "ada.toml")
    assert profile.email == "ada@xn--strae-oqa.de"


def test_seed_ids_are_read_in_the_forms_people_paste_them(tmp_path):
    text = GOOD + """
[[seeds]]
arxiv = "https://arxiv.org/abs/2106.09685v2"
[[seeds]]
arxiv = "arXiv:hep-th/9901001"
[[seeds]]
doi = "https://doi.org/10.1038/S41586-021-03819-2"
[[seeds]]
arxiv = "arxiv.org/html/2106.09685V2?context=cs"
[[seeds]]
doi = "www.doi.org/10.1000.10/123"
"""
    seeds = parse_profile(text, tmp_path / "ada.toml").seeds
    assert [(s.arxiv, s.doi) for s in seeds] == [("2106.09685", None), ("hep-th/9901001", None),
                                                 (None, "10.1038/s41586-021-03819-2"), ("2106.09685", None),
                                                 (None, "10.1000.10/123")]


@pytest.mark.parametrize("value", ["2411.0355", "1412.12345", "2413.01234", "0612.1234"])
def test_an_arxiv_id_with_the_wrong_number_of_digits_or_month_is_an_error_with_its_line(tmp_path, value):
    # four digits after the point until 1412, five since 1501; months 01-12; new-style ids began in 0704
    with pytest.raises(ProfileError) as info:
        parse_profile(GOOD + f'[[seeds]]\narxiv = "{value}"\n', tmp_path / "ada.toml")
    assert f'ada.toml:12: seeds[0].arxiv: is not an arXiv id (got "{value}")' in str(info.value)


def test_a_malformed_seed_id_with_a_title_is_a_warning_and_the_title_serves(tmp_path):
    # a profile that loaded before ids were checked must not stop getting digests over a typo in an id
    (tmp_path / "ada.toml").write_text(GOOD + '[[seeds]]\narxiv = "221117192"\ntitle = "Fast Inference from '
                                       'Transformers via Speculative Decoding"\n')
    loaded = load_profiles(tmp_path)
    assert loaded.errors == [] and list(loaded.profiles) == ["ada"]
    [seed] = loaded.profiles["ada"].seeds
    assert seed.arxiv is None and seed.title.startswith("Fast Inference")
    [warning] = loaded.warnings
    assert "ada.toml:12: seeds[0].arxiv: is not an arXiv id (got \"221117192\")" in warning
    assert "the seed is used by its title meanwhile" in warning


def test_a_profile_saved_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "ada.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())  # what Windows Notepad may write
    assert load_profile(path).name == "Ada"


def test_a_profile_needs_an_interest_or_a_seed(tmp_path):
    with pytest.raises(ProfileError, match=r"add at least one \[\[interests\]\]"):
        parse_profile('email = "a@b.org"\n', tmp_path / "a.toml")


def test_a_profile_of_thousands_of_interests_is_refused_with_the_way_out(tmp_path):
    many = "".join(f'[[interests]]\nlabel = "Topic {i}"\ndescription = "words {i}"\n' for i in range(100))  # and GOOD's own
    with pytest.raises(ProfileError, match=r"interests: 101 \[\[interests\]\] entries, more than the 100 .*"
                                           r"\[\[seeds\]\] or a library file") as caught:
        parse_profile(GOOD + many, tmp_path / "ada.toml")
    assert "ada.toml:" in str(caught.value)
    # the file's other mistakes are still reported with it
    with pytest.raises(ProfileError, match=r"(?s)send_at.*101 \[\[interests\]\]"):
        parse_profile(GOOD.replace('"07:30"', '"25:00"') + many, tmp_path / "ada.toml")
    # a hundred are fine
    hundred = "".join(f'[[interests]]\nlabel = "Topic {i}"\ndescription = "words {i}"\n' for i in range(99))
    assert len(parse_profile(GOOD + hundred, tmp_path / "ada.toml").interests) == 100


def test_frequencies():
    assert frequency_days("daily") == tuple(range(7))
    assert frequency_days("weekdays") == (0, 1, 2, 3, 4)
    assert frequency_days("weekly:sun") == (6,)
    # day names as people write them
    assert frequency_days("weekly:Monday") == (0,) == frequency_days("Weekly:mon")
    assert frequency_days("weekly:thursday, tues") == (1, 3)
    for bad in ("weekly:funday", "weekly:m", "weekly:", "weekly:mon,", "fortnightly"):
        with pytest.raises(ValueError):
            frequency_days(bad)


def test_a_broken_file_does_not_stop_the_others_and_its_last_good_version_serves(tmp_path):
    (tmp_path / "ada.toml").write_text(GOOD)
    (tmp_path / "bob.toml").write_text(GOOD.replace("ada@", "bob@"))
    first = load_profiles(tmp_path)
    assert set(first.profiles) == {"ada", "bob"} and not first.errors

    (tmp_path / "bob.toml").write_text(GOOD.replace("ada@", "bob@").replace("07:30", "7.30"))
    second = load_profiles(tmp_path, last_good=first.texts)
    assert set(second.profiles) == {"ada", "bob"}
    assert second.stale == ("bob",)
    assert second.profiles["bob"].send_at == "07:30"
    assert len(second.errors) == 1 and "bob.toml" in str(second.errors[0])

    third = load_profiles(tmp_path)  # no last good version known: bob is left out, ada still served
    assert set(third.profiles) == {"ada"}


def test_two_profiles_with_the_same_address_are_refused(tmp_path):
    (tmp_path / "ada.toml").write_text(GOOD)
    (tmp_path / "twin.toml").write_text(GOOD)
    loaded = load_profiles(tmp_path)
    assert set(loaded.profiles) == {"ada"}
    # the folder actually read (not a hard-coded profiles/), the line, and the likely cause
    assert f"twin.toml:2: email: ada@example.org is already used by {tmp_path / 'ada.toml'}" in str(loaded.errors[0])
    assert "move the example profiles out" in str(loaded.errors[0])
    # two profiles of one's own with the same address: no example profile is to blame
    for name in ("ada", "twin"):
        (tmp_path / f"{name}.toml").write_text(GOOD.replace("ada@example.org", "me@uni.example"))
    [error] = load_profiles(tmp_path).errors
    assert str(error).endswith("each user needs their own address")


def test_a_profile_error_seen_by_a_command_and_by_the_daemon_is_one_event(tmp_path):
    from digest.config import load_settings
    from digest.pipeline import load_user_profiles, record_profile_error
    from digest.store import Store

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "ada.toml").write_text(GOOD)
    (profiles / "twin.toml").write_text(GOOD)
    settings = load_settings("/dev/null", data_dir=str(tmp_path / "data"), profiles_dir=str(profiles))
    store = Store(settings.db_path)
    loaded = load_user_profiles(store, settings)  # `digest send` and the other commands
    record_profile_error(store, loaded, loaded.errors[0])  # the daemon's profile watcher
    [event] = [e for e in store.recent_events(levels=("ERROR",)) if e["component"] == "profiles"]
    assert event["user"] == "twin" and event["message"].startswith(f"{profiles / 'twin.toml'}:2: email:")


def test_a_new_profile_cannot_take_an_address_a_user_already_has(tmp_path):
    """The established user keeps the address whatever the file names (`aaa` sorts before `ada`), the newcomer
    is the error, and a user whose edit takes another's address keeps being served from their last good version:
    no address ever gets two digests."""
    (tmp_path / "ada.toml").write_text(GOOD)
    (tmp_path / "bob.toml").write_text(GOOD.replace("ada@", "bob@"))
    first = load_profiles(tmp_path)
    (tmp_path / "aaa.toml").write_text(GOOD)
    (tmp_path / "bob.toml").write_text(GOOD.replace('send_at = "07:30"', 'send_at = "08:00"'))  # bob takes ada's
    loaded = load_profiles(tmp_path, first.texts)
    assert set(loaded.profiles) == {"ada", "bob"}
    assert loaded.profiles["ada"].email == "ada@example.org" and loaded.profiles["bob"].email == "bob@example.org"
    assert loaded.stale == ("bob",) and loaded.profiles["bob"].send_at == "07:30"
    errors = sorted(str(e) for e in loaded.errors)
    assert len(errors) == 2
    assert errors[0].startswith(f"{tmp_path / 'aaa.toml'}:2: email: ada@example.org is already used by "
                                f"{tmp_path / 'ada.toml'}")
    assert errors[1].startswith(f"{tmp_path / 'bob.toml'}:2: email: ada@example.org is already used by "
                                f"{tmp_path / 'ada.toml'}")
    assert set(loaded.texts) == {"ada"}  # neither refused text becomes a last good version


def test_a_renamed_profile_keeps_its_address_against_a_file_that_was_refused_for_it(tmp_path):
    """bob.toml had bob@; carol.toml, naming bob@ too, was refused. bob.toml renamed robert.toml (`mv`): robert is
    bob and keeps the address; carol (which sorts first) stays the error and gets none of bob's digests."""
    bob = _with("bob@example.org")
    (tmp_path / "bob.toml").write_text(bob)
    first = load_profiles(tmp_path)
    (tmp_path / "carol.toml").write_text(bob.replace('send_at = "07:30"', 'send_at = "06:00"'))
    second = load_profiles(tmp_path, first.texts)
    assert set(second.profiles) == {"bob"} and "already used by" in str(second.errors[0])
    (tmp_path / "bob.toml").rename(tmp_path / "robert.toml")
    third = load_profiles(tmp_path, second.texts)
    assert set(third.profiles) == {"robert"}
    assert third.profiles["robert"].email == "bob@example.org"
    assert [str(e).split(":")[0] for e in third.errors] == [str(tmp_path / "carol.toml")]
    # renamed and edited at once is no longer provably bob: the names decide, as before (carol sorts first)
    (tmp_path / "robert.toml").write_text(bob.replace('send_at = "07:30"', 'send_at = "09:00"'))
    (tmp_path / "robert.toml").rename(tmp_path / "rob.toml")
    assert set(load_profiles(tmp_path, second.texts).profiles) == {"carol"}


def _with(email):
    return GOOD.replace("ada@example.org", email)


def test_a_contested_address_goes_to_whoever_held_it_last_and_fallbacks_never_share_one(tmp_path):
    # bob's file was removed, zed took bob's address meanwhile, then bob's file came back: zed keeps it
    # (last good texts come least recently loaded first, as Store.profile_texts gives them)
    (tmp_path / "bob.toml").write_text(_with("bob@example.org"))
    (tmp_path / "zed.toml").write_text(_with("bob@example.org"))
    loaded = load_profiles(tmp_path, {"bob": _with("bob@example.org"), "zed": _with("bob@example.org")})
    assert set(loaded.profiles) == {"zed"}
    assert str(loaded.errors[0]).startswith(f"{tmp_path / 'bob.toml'}:2: email: bob@example.org is already used")
    # two refused users whose last good versions share an address: only one of them is served at it
    for user in ("pp", "qq", "xx", "yy"):
        (tmp_path / f"{user}.toml").write_text(_with(f"{user}@example.org"))
    (tmp_path / "bob.toml").unlink()
    (tmp_path / "zed.toml").unlink()
    (tmp_path / "xx.toml").write_text(_with("pp@example.org"))
    (tmp_path / "yy.toml").write_text(_with("qq@example.org"))
    last_good = {"xx": _with("e@example.org"), "yy": _with("e@example.org"),
                 "pp": _with("pp@example.org"), "qq": _with("qq@example.org")}
    loaded = load_profiles(tmp_path, last_good)
    emails = [p.email for p in loaded.profiles.values()]
    assert sorted(emails) == ["e@example.org", "pp@example.org", "qq@example.org"]
    assert loaded.profiles["pp"].email == "pp@example.org" and loaded.profiles["qq"].email == "qq@example.org"


def test_a_broken_files_last_good_version_never_takes_an_address_from_a_file_that_loads(tmp_path):
    # ada once held ben's address (while ben.toml was out of the folder); both files are right again, then
    # ada's breaks: her stale last good version must not displace ben, who would get no digest and ada's instead
    (tmp_path / "ada.toml").write_text(GOOD.replace('send_at = "07:30"', 'send_at = "7h30"'))
    (tmp_path / "ben.toml").write_text(_with("ben@example.org"))
    last_good = {"ben": _with("ben@example.org"), "ada": _with("ben@example.org")}  # ada's saved most recently
    loaded = load_profiles(tmp_path, last_good)
    assert set(loaded.profiles) == {"ben"} and loaded.profiles["ben"].email == "ben@example.org"
    errors = [str(e) for e in loaded.errors]
    assert any(e.startswith(f"{tmp_path / 'ada.toml'}:") and "send_at" in e for e in errors), errors
    assert f"{tmp_path / 'ada.toml'}: cannot serve its last good version: that names ben@example.org, which " \
           f"{tmp_path / 'ben.toml'} has now; ada gets no digest until ada.toml is fixed (the error above)" in errors


# the line is the one of the value that is wrong, not the first line that has a key of that name
LAYERED = GOOD + '''
[[interests]]
label = "Retrieval"
weight = 1

[[interests]]
label = "Compilers"
weight = 9

[boost]
keywords = ["kv cache"]

[mute]
keywords = "survey"
'''


@pytest.mark.parametrize("text, message", [
    (LAYERED.replace("weight = 9", "weight = 1"), r"ada\.toml:24: mute\.keywords: must be a list of strings"),
    (LAYERED.replace('keywords = "survey"', 'keywords = ["survey"]'), r"ada\.toml:18: interests\[2\]\.weight"),
    (LAYERED.replace('keywords = "survey"', 'keywords = ["survey"]').replace("weight = 9", "weight = 1")
     .replace('keywords = ["kv cache"]', 'keywords = ["kv cache"]\nfrequency = "daily"'),
     r"ada\.toml:22: boost\.frequency: unknown key \(frequency is a top-level key"),
    ('mute = {keywords = 3}\n' + GOOD, r"ada\.toml:1: mute\.keywords: must be a list of strings"),
    # the second [[seeds]] entry (line 14), not the first; a required key that is missing: its entry's header
    (GOOD + '[[seeds]]\ntitle = "A seed"\n\n[[seeds]]\nabstract = "only an abstract"\n',
     r"ada\.toml:14: seeds\[1\]: needs an arxiv id"),
    (LAYERED.replace('keywords = "survey"', 'keywords = ["survey"]').replace("weight = 9", "weight = 1")
     .replace('label = "Compilers"\n', ""), r"ada\.toml:16: interests\[2\]\.label: is required"),
    # quoted table names and keys are the same keys
    (LAYERED.replace("weight = 9", "weight = 1").replace("[mute]", '[ "mute" ]')
     .replace('keywords = "survey"', "'keywords' = \"survey\""), r"ada\.toml:24: mute\.keywords: must be a list"),
    # a line inside a multi-line string is text, not a key
    (GOOD.replace('description = "faster LLM inference"', 'description = """\nweight = 1\n"""')
     .replace("weight = 2", "weight = 9"), r"ada\.toml:12: interests\[0\]\.weight"),
])
def test_errors_point_at_the_line_of_the_value_that_is_wrong(tmp_path, text, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, tmp_path / "ada.toml")


def test_a_profile_with_a_library_keeps_its_name(tmp_path):
    (tmp_path / "lib.bib").write_text("@article{a, title = {A paper}}\n")
    text = GOOD.replace('name = "Ada"', 'name = "Ada Lovelace"\nlibrary = "lib.bib"')
    profile = parse_profile(text, tmp_path / "ada.toml")
    assert profile.name == "Ada Lovelace"
    assert profile.library == (str((tmp_path / "lib.bib").resolve()),)


def test_a_fixed_offset_zone_that_people_use_for_a_city_with_summer_time_is_a_warning_naming_the_city_zone(tmp_path):
    path = tmp_path / "ada.toml"
    path.write_text(GOOD.replace("Europe/London", "EST"))
    [note] = load_profile(path).notes
    assert note == (f"{path}:3: timezone: 'EST' is a fixed offset from UTC without daylight saving time, so in summer "
                    'digests come an hour off; name your city\'s zone instead; for example: timezone = '
                    '"America/New_York"')
    path.write_text(GOOD.replace("Europe/London", "America/New_York"))
    assert load_profile(path).notes == ()


@pytest.mark.parametrize(("text", "fix"), [
    ("send_at = 07:30\n", 'text goes in quotes (send_at = "07:30"'),
    ('library = "C:\\Users\\tess\\zotero.bib"\n', "write a Windows path in single quotes"),
    ('email = "a@example.org"\nemail = "b@example.org"\n', "a key is written twice: keep one of the two lines"),
    ('[boost]\nkeywords = ["a"]\n[boost]\nauthors = ["b"]\n', "a [table] is declared twice: merge the two"),
    # one interest written [interests], the next [[interests]]: not a key written twice (deleting one would lose it)
    ('[interests]\nlabel = "A"\n\n[[interests]]\nlabel = "B"\n', "a [block] of the same name above it, with single"),
    ('name = “Tess”\n', "use straight quotes"),
    ("x = " + "[" * 2000 + "]" * 2000 + "\n", "brackets nested too deep"),
])
def test_a_toml_slip_gets_its_line_its_key_and_the_usual_fix(tmp_path, text, fix):
    with pytest.raises(ProfileError) as info:
        parse_profile(text, tmp_path / "ada.toml")
    assert fix in str(info.value) and str(info.value).startswith(str(tmp_path / "ada.toml"))


def test_a_keyword_without_letters_is_dropped_with_a_note_and_does_not_mute_everything(tmp_path):
    text = GOOD.replace("[[interests]]", '[mute]\nkeywords = ["survey", ",", "Survey"]\n\n[[interests]]')
    profile = parse_profile(text, tmp_path / "ada.toml")
    assert profile.mute_keywords == ("survey",)  # the comma is gone, the case-only duplicate too
    [note] = profile.notes
    assert note.startswith(f"{tmp_path / 'ada.toml'}:8: mute.keywords:") and "no letter or digit" in note


def test_a_keyword_both_boosted_and_muted_and_a_label_given_twice_get_notes(tmp_path):
    text = GOOD.replace("[[interests]]", '[boost]\nkeywords = ["Survey"]\n[mute]\nkeywords = ["survey"]\n\n'
                                         '[[interests]]') + '\n[[interests]]\nlabel = "speculative decoding"\n'
    notes = parse_profile(text, tmp_path / "ada.toml").notes
    assert len(notes) == 2
    assert ":10: mute.keywords: " in notes[0] and "both boosted and muted; the mute wins" in notes[0]
    assert ":18: interests[1].label: " in notes[1] and "label of interests[0] too" in notes[1]


def test_a_file_that_is_not_a_profile_says_so(tmp_path):
    with pytest.raises(ProfileError, match=r"config\.toml: not a profile \(it has data_dir, imap, none of a "
                                           r"profile's keys\).*profiles_dir"):
        parse_profile('data_dir = "data"\n[imap]\nhost = "x"\n', tmp_path / "config.toml")
    with pytest.raises(ProfileError, match=r"unknown key"):  # a profile with a stray key is still a profile
        parse_profile(GOOD + "\n[imap]\nhost = 'x'\n", tmp_path / "ada.toml")


def test_a_misnamed_profile_is_named_in_a_warning(tmp_path):
    (tmp_path / "ada.toml").write_text(GOOD)
    for name in ("uma.TOML", "tess.toml.txt", "ben.tml", "ada.toml.bak", "notes.txt", ".ada.toml.swp"):
        (tmp_path / name).write_text(GOOD.replace("ada@", f"{name.split('.')[0]}@"))
    loaded = load_profiles(tmp_path)
    assert list(loaded.profiles) == ["ada"] and not loaded.errors
    assert sorted(loaded.warnings) == sorted(
        f"{tmp_path / name}: not read: only files ending in .toml (lower case) are profiles; rename it to {stem}.toml"
        for name, stem in (("uma.TOML", "uma"), ("tess.toml.txt", "tess"), ("ben.tml", "ben")))


@pytest.mark.parametrize("zone, fixed", [("UTC+1", '"Etc/GMT-1"'), ("GMT-5", '"Etc/GMT+5"'),
                                         ("UTC+01:00", '"Etc/GMT-1"'), ("+05:30", None)])
def test_an_offset_is_not_a_zone_and_the_hint_does_not_invert_its_sign(tmp_path, zone, fixed):
    with pytest.raises(ProfileError) as error:
        parse_profile(GOOD.replace("Europe/London", zone), tmp_path / "ada.toml")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'ada.toml'}:3: timezone: unknown IANA time zone")
    assert "an offset from UTC is not a time zone: name your city's zone" in message
    assert (f"for a fixed offset write {fixed}" in message) if fixed else "fixed offset" not in message
    assert "GMT+0" not in message  # the old spelling hint offered a zone 1 or 5 hours off


def test_an_etc_gmt_zone_or_the_servers_localtime_get_a_note(tmp_path):
    [note] = parse_profile(GOOD.replace("Europe/London", "Etc/GMT+1"), tmp_path / "ada.toml").notes
    assert "'Etc/GMT+1' is UTC-1 (the sign of Etc/GMT zones is inverted" in note and 'write "Etc/GMT-1"' in note
    [note] = parse_profile(GOOD.replace("Europe/London", "localtime"), tmp_path / "ada.toml").notes
    assert note.startswith(f"{tmp_path / 'ada.toml'}:3: timezone: 'localtime' is not a place")
    assert parse_profile(GOOD.replace("Europe/London", "Etc/UTC"), tmp_path / "ada.toml").notes == ()


def test_more_papers_than_fit_in_an_unclipped_email_get_a_note(tmp_path):
    text = GOOD.replace('name = ', 'max_items = 60\nname = ', 1)
    assert "max_items = 60" in text
    [note] = parse_profile(text, tmp_path / "ada.toml").notes
    assert "max_items: 60 papers make an email of more than Gmail's ~102 KB" in note and "[Message clipped]" in note
    assert parse_profile(text.replace("max_items = 60", "max_items = 30"), tmp_path / "ada.toml").notes == ()


def test_many_malformed_seeds_each_get_their_line_from_one_read_of_the_file(tmp_path):
    from digest.errors import _toml_index

    text = GOOD + "".join(f'[[seeds]]\narxiv = "x{i}"\ntitle = "Paper {i}"\n' for i in range(500))
    _toml_index.cache_clear()
    notes = parse_profile(text, tmp_path / "ada.toml").notes
    assert [int(n.split(":")[1]) for n in notes] == [12 + 3 * i for i in range(500)]  # each seed's arxiv line
    assert _toml_index.cache_info().misses == 1  # the text was indexed once, not once per seed


def test_an_author_both_boosted_and_muted_however_written_gets_a_note(tmp_path):
    text = GOOD.replace("[[interests]]", '[boost]\nauthors = ["Yu, Geng", "Y LeCun"]\n[mute]\nauthors = ["Ada Byron", '
                                         '"Geng Yu"]\n\n[[interests]]')
    [note] = parse_profile(text, tmp_path / "ada.toml").notes
    assert note == (f"{tmp_path / 'ada.toml'}:10: mute.authors: \"Geng Yu\" and \"Yu, Geng\" in [boost] authors are "
                    "one author to the ranking (the same surname and first initial), so their papers are both "
                    "boosted and muted; the mute wins (they are left out): keep the author in one of [boost] and "
                    "[mute]")
    # written alike: the note of a keyword in both lists, once; another first initial is another author
    text = GOOD.replace("[[interests]]", '[boost]\nauthors = ["Geng Yu", "Wei Li"]\n[mute]\nauthors = ["geng yu", '
                                         '"Li, Qiang"]\n\n[[interests]]')
    [note] = parse_profile(text, tmp_path / "ada.toml").notes
    assert ":10: mute.authors: \"geng yu\" is both boosted and muted; the mute wins" in note


def test_a_file_with_several_mistakes_gets_them_all_at_once(tmp_path):
    """A time zone, a send time and max_items wrong in one file: each fix used to reveal the next."""
    text = (GOOD.replace('"Europe/London"', '"Mars/Olympus"').replace('"07:30"', '"25:00"')
            .replace("weight = 2", "weight = 9\nlabl = \"x\"") + "max_items = 0\n")
    text = "max_items = 0\n" + text.replace("max_items = 0\n", "")
    path = tmp_path / "ada.toml"
    with pytest.raises(ProfileError) as info:
        parse_profile(text, path)
    lines = str(info.value).split("\n  ")
    assert [line.split(": ")[1] for line in lines] == ["timezone", "send_at", "max_items", "interests[0].labl",
                                                       "interests[0].weight"], lines
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "unknown IANA time zone 'Mars/Olympus'" in lines[0] and 'did you mean "label"?' in lines[3]
    # one mistake stays one line, as before
    with pytest.raises(ProfileError) as info:
        parse_profile(GOOD.replace('"07:30"', '"25:00"'), path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}:4: send_at:")


def test_an_empty_keyword_or_author_is_ignored_with_a_note_naming_its_entry(tmp_path):
    text = GOOD.replace("[[interests]]", '[boost]\nkeywords = ["", "diffusion"]\nauthors = ["  "]\n\n[[interests]]')
    profile = parse_profile(text, tmp_path / "ada.toml")
    assert profile.boost_keywords == ("diffusion",) and profile.boost_authors == ()
    assert [n.split(": ", 2)[1:] for n in profile.notes] == [
        ["boost.keywords", "entry 1 is empty; it is ignored: remove it, or write the keyword there; for example: "
                           'keywords = ["diffusion", "sparse attention"]'],
        ["boost.authors", "entry 1 is empty; it is ignored: remove it, or write the author there; for example: "
                          'authors = ["Yann LeCun"]']]


def test_a_weekly_frequency_without_its_day_says_how_to_name_it(tmp_path):
    with pytest.raises(ProfileError, match=r'ada.toml:5: frequency: unknown frequency \'weekly\' needs its day or '
                                           r'days: for example "weekly:mon" or "weekly:mon,thu"$'):
        parse_profile(GOOD.replace('"weekly:mon,thu"', '"weekly"'), tmp_path / "ada.toml")


@pytest.mark.parametrize("text", ["", "# just a comment\n", "\n\n"])
def test_an_empty_profile_says_it_is_empty_and_where_to_start(tmp_path, text):
    with pytest.raises(ProfileError, match=r"cat\.toml: empty \(only comments, or nothing\): a profile needs at least "
                                           r"an email .* start from a copy of profiles/ada\.toml"):
        parse_profile(text, tmp_path / "cat.toml")


@pytest.mark.parametrize("name", ["~nosuchuser-digest/a.bib", "a\u0000b.bib"])
def test_a_library_name_that_is_no_file_name_is_the_profiles_error(tmp_path, name):
    text = GOOD.replace("[[interests]]", f"library = {json.dumps(name)}\n\n[[interests]]")
    with pytest.raises(ProfileError, match=r"ada\.toml:\d+: library: .* is no usable file name"):
        parse_profile(text, tmp_path / "ada.toml")
