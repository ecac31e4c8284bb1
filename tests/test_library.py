"""A profile's `library`: a reference manager's export (BibTeX, RIS, CSL JSON) as seed papers."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from digest.errors import ProfileError
from digest.library import read_library
from digest.models import Paper
from digest.profiles import load_profiles, parse_profile

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "library"
REPO = Path(__file__).resolve().parent.parent

PROFILE = '''email = "{user}@example.org"
library = {library}
'''


def _profiles(tmp_path: Path, **libraries: str) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir(exist_ok=True)
    for user, library in libraries.items():
        (directory / f"{user}.toml").write_text(PROFILE.format(user=user, library=library))
    return directory


def _touch_later(path: Path) -> None:
    """Make sure a rewrite is seen as a change even on a coarse-clock file system."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_a_zotero_bibtex_export_becomes_seed_papers_and_its_broken_entries_are_reported_with_their_line():
    read = read_library(FIXTURES / "zotero.bib")
    assert read.error is None and not read.stale
    titles = [s.title for s in read.seeds]
    # TeX and BibTeX's case-protecting braces are gone; the duplicate AlphaFold entry (same DOI) counts once
    assert titles == [
        "Highly accurate protein structure prediction with AlphaFold",
        "Broadly applicable and accurate protein design by integrating structure prediction networks and "
        "diffusion generative models",
        "Illuminating protein space with a programmable generative model",
        "Evolutionary-scale prediction of atomic-level protein structure with a language model",
        "Robust deep learning-based protein sequence design using ProteinMPNN",
        "DiffDock: Diffusion Steps, Twists, and Turns for Molecular Docking",
    ]
    by_title = {s.title: s for s in read.seeds}
    alphafold = by_title[titles[0]]
    assert alphafold.doi == "10.1038/s41586-021-03819-2" and alphafold.abstract.startswith("Proteins are essential")
    assert by_title[titles[2]].arxiv == "2205.15019"          # from arXiv's own DOI
    assert by_title[titles[5]].arxiv == "2210.01776"          # from the URL / Google Scholar's journal field
    assert by_title[titles[3]].abstract is None
    path = FIXTURES / "zotero.bib"
    assert read.problems == (
        f"{path}:46: entry skipped, it cannot be read (Unexpected block start: `@inproceedings`. Was still "
        "looking for field-value closing `}`); check its braces and quotes",
        f"{path}:50: @inproceedings{{no_title_2019}} has no title; skipped (add a title field)",
    )


def test_ris_and_csl_json_exports_become_seed_papers():
    ris = read_library(FIXTURES / "mendeley.ris")
    assert [(s.title, s.arxiv, s.doi) for s in ris.seeds] == [
        ("Attention is all you need", "1706.03762", None),
        ("BERT: Pre-training of deep bidirectional transformers for language understanding", None,
         "10.18653/v1/n19-1423"),
    ]
    assert ris.seeds[0].abstract.startswith("The dominant sequence transduction models")
    assert ris.problems == (f"{FIXTURES / 'mendeley.ris'}:17: entry 3 (TY  - JOUR) has no title (TI, T1, CT or BT); skipped",)

    csl = read_library(FIXTURES / "zotero.json")
    assert [(s.title, s.arxiv) for s in csl.seeds] == [
        ("Denoising Diffusion Probabilistic Models", "2006.11239"),
        ("Score-based generative modeling through stochastic differential equations", None),
    ]
    assert csl.problems == (f'{FIXTURES / "zotero.json"}:4: item 3 has no "title"; skipped',)


@pytest.mark.parametrize("name, content, message", [
    ("missing.bib", None, r"missing\.bib: cannot read the library \(No such file or directory\); check the path"),
    ("library.pdf", b"%PDF", r"library\.pdf: not a library export this reads \(BibTeX, RIS, CSL JSON, PubMed's "
                             r"MEDLINE \.nbib, EndNote's tagged \.enw\); export it .* BibTeX \(\.bib\)"),
    ("endnote.xml", b'<?xml version="1.0"?><xml><records><record><titles>x</titles></record></records></xml>',
     r"endnote\.xml: an EndNote XML export, which is not read here: in EndNote, File > Export with the output style "
     r"\"RefMan \(RIS\) Export\", and name the file \.ris"),
    ("renamed.ris", b'<?xml version="1.0"?><xml><records>\n<record>x</record></records></xml>',
     r"renamed\.ris: an EndNote XML export"),
    ("zotero.rdf", b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"></rdf:RDF>',
     r"zotero\.rdf: a Zotero RDF export, which is not read here: in Zotero, export the library as BibTeX"),
    ("notes.ris", b"Some notes\nER  - \n", r"notes\.ris: not a RIS file: no entry starts with a \"TY  -\" line"),
    ("latin1.bib", "@article{a, title={Caf\xe9}}".encode("latin-1"), r"latin1\.bib: not UTF-8 text; export"),
    ("named.bib", "% Encoding: no-such-codec\n@article{a, title={Caf\xe9}}".encode("latin-1"),
     r"named\.bib: not UTF-8 text; export"),
    ("broken.json", b'[{"title": "x"},\n  {"title": }]', r"broken\.json:2: not valid JSON \(Expecting value\)"),
    ("object.json", b'{"title": "x"}', r"object\.json: a CSL JSON library is a list of items"),
    ("empty.bib", b"% nothing exported yet\n", r"empty\.bib: no BibTeX entry with a title found; export it"),
    ("folder.bib", "dir", r"folder\.bib: a folder; name the exported file itself"),
    ("pipe.bib", "fifo", r"pipe\.bib: not a regular file \(a named pipe or a device\); name the exported file"),
    ("zero.bib", "/dev/zero", r"zero\.bib: not a regular file"),
    ("blank.bib", b"@article{a, title = {{}}}\n@article{b, title = {\\relax}}\n",
     r"blank\.bib: no BibTeX entry with a title found \(2 skipped, the first: .*blank\.bib:1: @article\{a\} has an "
     r"empty title and no DOI or arXiv id; skipped \(give it a title\)\)"),
])
def test_a_library_that_cannot_be_used_gets_a_precise_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer for ever
    elif content == "/dev/zero":
        path.symlink_to(content)
    elif content is not None:
        path.write_bytes(content)
    read = read_library(path)
    assert read.seeds == () and not read.stale
    assert read.error is not None
    assert re.search(message, read.error), read.error


def test_the_library_key_is_validated_with_its_line_and_a_library_alone_is_a_profile(tmp_path):
    with pytest.raises(ProfileError, match=r"ada\.toml:2: library: must be a file name or a list of them"):
        parse_profile('email = "a@b.org"\nlibrary = 3\n', tmp_path / "ada.toml")
    # a file of another format is the library's error (read_library), not the profile's: the profile serves
    assert len(parse_profile('email = "a@b.org"\nlibrary = ["ok.bib", "papers.pdf"]\n',
                             tmp_path / "ada.toml").library) == 2
    profile = parse_profile('email = "a@b.org"\nlibrary = "libs/zotero.bib"\n', tmp_path / "profiles" / "ada.toml")
    # relative to the profile's own folder, wherever digest runs from
    assert profile.library == (str((tmp_path / "profiles" / "libs" / "zotero.bib").resolve()),)


def test_edits_to_a_library_count_at_the_next_load_and_a_broken_one_keeps_its_last_good_read(tmp_path):
    directory = _profiles(tmp_path, ada='"ada.bib"', ben='["ben.ris", "ben.json"]', cy='"gone.bib"')
    library = directory / "ada.bib"
    shutil.copy(FIXTURES / "zotero.bib", library)
    shutil.copy(FIXTURES / "mendeley.ris", directory / "ben.ris")
    shutil.copy(FIXTURES / "zotero.json", directory / "ben.json")

    first = load_profiles(directory)
    assert len(first.profiles["ada"].library_seeds) == 6
    assert len(first.profiles["ben"].library_seeds) == 4          # both of ben's files
    assert any(w.startswith(f"{library}:46: ") for w in first.warnings)
    # a library that does not exist is an error, but the user is still there (it has nothing else to rank by)
    assert [str(e) for e in first.errors] == [
        f"{directory / 'cy.toml'}:2: library: {directory / 'gone.bib'}: cannot read the library (No such file or "
        "directory); check the path (relative paths start at the profile's folder) or export it from your "
        "reference manager as BibTeX (.bib), RIS (.ris) or CSL JSON (.json)"]
    assert first.profiles["cy"].library_seeds == ()

    with library.open("a") as f:
        f.write("\n@article{new_2024, title = {Protein language models learn evolutionary statistics}}\n")
    _touch_later(library)
    second = load_profiles(directory)
    assert [s.title for s in second.profiles["ada"].library_seeds][-1] == \
        "Protein language models learn evolutionary statistics"

    library.write_text("this is not what Zotero exported\n")     # a half-written export, say
    _touch_later(library)
    third = load_profiles(directory)
    assert len(third.profiles["ada"].library_seeds) == 7          # the last good read keeps serving
    ada_errors = [str(e) for e in third.errors if "ada.toml" in str(e)]
    assert ada_errors == [f"{directory / 'ada.toml'}:2: library: {library}: no BibTeX entry with a title found; "
                          "export it from your reference manager as BibTeX (.bib), RIS (.ris) or CSL JSON (.json); "
                          "until it is fixed, its last good read (7 papers) keeps serving"]
    assert len(third.profiles["ben"].library_seeds) == 4          # the others are untouched


def test_digest_check_counts_the_library_and_names_what_it_skipped(tmp_path):
    directory = _profiles(tmp_path, ada='"zotero.bib"')
    shutil.copy(FIXTURES / "zotero.bib", directory / "zotero.bib")
    run = subprocess.run([sys.executable, "-m", "digest", "--config", "/dev/null", "check", "--profiles",
                          str(directory)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "profile ada: ok (0 interests, 0 seeds, 6 library papers, daily at 07:00 UTC)" in run.stdout
    assert f"warning: {directory / 'zotero.bib'}:50: @inproceedings{{no_title_2019}} has no title" in run.stdout
    # the same papers in a second export (or one file named twice) count once
    shutil.copy(FIXTURES / "zotero.bib", directory / "again.bib")
    profile = directory / "ada.toml"
    profile.write_text(profile.read_text().replace('library = "zotero.bib"', 'library = ["zotero.bib", "again.bib", '
                                                                              '"zotero.bib"]'))
    assert '"again.bib"' in profile.read_text()
    run = subprocess.run([sys.executable, "-m", "digest", "--config", "/dev/null", "check", "--profiles",
                          str(directory)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "profile ada: ok (0 interests, 0 seeds, 6 library papers, daily at 07:00 UTC)" in run.stdout, run.stdout
    # a profile file given where the folder is expected
    run = subprocess.run([sys.executable, "-m", "digest", "--config", "/dev/null", "check", "--profiles",
                          str(profile)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 2 and f"{profile}: a file, not a folder; give the folder that holds the profiles (e.g. " \
        f"--profiles {directory})" in run.stdout + run.stderr
    profile.write_text(profile.read_text().replace('["zotero.bib", "again.bib", "zotero.bib"]', '"zotero.bib"'))

    (directory / "zotero.bib").unlink()
    run = subprocess.run([sys.executable, "-m", "digest", "--config", "/dev/null", "check", "--profiles",
                          str(directory)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 1
    assert f"error: {directory / 'ada.toml'}:2: library: {directory / 'zotero.bib'}: cannot read" in run.stdout


@pytest.mark.model
def test_a_profile_with_only_a_library_ranks_by_it_and_says_which_paper_matched(tmp_path):
    from digest.config import load_settings
    from digest.embed import Embedder
    from digest.pipeline import rank_user
    from digest.store import Store

    directory = _profiles(tmp_path, ada='"zotero.bib"')
    shutil.copy(FIXTURES / "zotero.bib", directory / "zotero.bib")
    settings = load_settings("/dev/null", data_dir=str(tmp_path / "data"), profiles_dir=str(directory))
    store = Store(settings.db_path)
    store.add_papers([
        Paper("Diffusion models for de novo design of protein binders",
              abstract="We generate protein backbones that bind a target with a denoising diffusion model."),
        Paper("A survey of reinforcement learning for robot locomotion",
              abstract="We review learning-based controllers for legged robots."),
        Paper("Measuring the Hubble constant with gravitational-wave sirens",
              abstract="Standard sirens give an independent estimate of the expansion rate."),
        Paper("Sparse attention for long-document summarisation",
              abstract="We summarise long documents with a sparse transformer."),
    ])
    profile = load_profiles(directory).profiles["ada"]
    ranking = rank_user(store, Embedder("all-MiniLM-L6-v2"), settings, profile)
    best = ranking.ranking.scored[0]
    assert best.paper.title == "Diffusion models for de novo design of protein binders"
    assert best.score > ranking.ranking.scored[1].score
    library_titles = {s.title for s in profile.library_seeds}
    assert best.details["match"]["kind"] == "seed" and best.details["match"]["label"] in library_titles
    assert f"Close to “{best.details['match']['label']}” in your library" in best.reason


@pytest.mark.model
def test_the_readers_own_seed_papers_are_never_candidates_when_an_alert_brings_them(tmp_path):
    from digest.config import load_settings
    from digest.embed import Embedder
    from digest.pipeline import rank_user, why_not_candidate
    from digest.store import Store

    directory = _profiles(tmp_path, ada='"zotero.bib"')
    shutil.copy(FIXTURES / "zotero.bib", directory / "zotero.bib")
    with (directory / "ada.toml").open("a") as f:
        f.write('[[seeds]]\narxiv = "https://arxiv.org/abs/2411.03555v1"\n')
    settings = load_settings("/dev/null", data_dir=str(tmp_path / "data"), profiles_dir=str(directory))
    store = Store(settings.db_path)
    store.add_papers([
        # a library entry, by its DOI written another way; the profile's seed, by its arXiv id with a version
        Paper("Robust deep learning-based protein sequence design using ProteinMPNN", doi="10.1126/SCIENCE.ADD2187"),
        Paper("3DGS-CD: 3D Gaussian Splatting-based Change Detection", arxiv_id="2411.03555"),
        # a library entry known by its title alone (the alert gave no id)
        Paper("Illuminating protein space with a programmable generative model"),
        Paper("Diffusion models for de novo design of protein binders", abstract="Backbones that bind a target."),
        Paper("Sparse attention for long-document summarisation", abstract="A sparse transformer."),
    ])
    profile = load_profiles(directory).profiles["ada"]
    ranking = rank_user(store, Embedder("all-MiniLM-L6-v2"), settings, profile)
    assert sorted(s.paper.title for s in ranking.ranking.scored) == [
        "Diffusion models for de novo design of protein binders", "Sparse attention for long-document summarisation"]
    assert ranking.n_candidates == 2
    library = "your library (the profile's library file)"
    for query, said in (("ProteinMPNN", library), ("2411.03555", f"{directory / 'ada.toml'}:4"),
                        ("Illuminating protein space", library)):
        [row] = store.papers_matching(query)
        assert why_not_candidate(store, settings, profile, row) == \
            f"one of your seed papers ({said}): a paper you already know is not ranked"


def test_a_seed_hides_only_its_own_paper_not_a_namesake(tmp_path):
    from digest.pipeline import own_seed
    from digest.profiles import parse_profile

    profile = parse_profile('email = "a@example.org"\n[[seeds]]\narxiv = "2402.06196"\ntitle = "Large Language '
                            'Models: A Survey"\n[[seeds]]\ntitle = "Letter to the Editor"\n[[seeds]]\ndoi = '
                            '"10.1038/s41586-026-0001-1"\ntitle = "Publisher Correction"\n[[seeds]]\ntitle = "Highly '
                            'accurate protein structure prediction with AlphaFold"\n', tmp_path / "ada.toml")
    seeded = own_seed(profile)
    assert seeded("2402.06196", None, "Another title") == f"{tmp_path / 'ada.toml'}:3"
    assert seeded(None, None, "Large language models: a survey") == f"{tmp_path / 'ada.toml'}:3"  # by title
    assert seeded("2404.99999", None, "Large Language Models: A Survey") is None  # another survey of that name
    assert seeded(None, "10.1016/j.x.2026.1", "Letter to the editor") is None  # a title many papers have
    assert seeded(None, "10.1038/s41586-026-0999-9", "Publisher Correction") is None
    # a title that merely starts with such a word is a paper's own
    response = parse_profile('email = "a@example.org"\n[[seeds]]\ntitle = "Response of Arctic sea ice to Atlantic '
                             'warming"\n', tmp_path / "ben.toml")
    assert own_seed(response)(None, None, "Response of Arctic sea ice to Atlantic warming") == \
        f"{tmp_path / 'ben.toml'}:2"
    reply = parse_profile('email = "a@example.org"\n[[seeds]]\ntitle = "Reply to: On the limits of scaling laws"\n',
                          tmp_path / "cy.toml")
    assert own_seed(reply)(None, None, "Reply to: On the limits of scaling laws") is None
    assert seeded(None, "10.1038/s41586-021-03819-2", "Highly accurate protein structure prediction with AlphaFold") \
        == f"{tmp_path / 'ada.toml'}:10"  # a seed given by its title alone: the line of its [[seeds]]


def test_a_library_entry_without_abstract_reads_the_stored_abstract_of_the_same_paper(tmp_path):
    from digest.pipeline import profile_anchors
    from digest.store import Store

    directory = _profiles(tmp_path, ada='"zotero.bib"')
    shutil.copy(FIXTURES / "zotero.bib", directory / "zotero.bib")
    store = Store(tmp_path / "digest.db")
    store.add_papers([Paper("Robust deep learning–based protein sequence design using ProteinMPNN",
                            abstract="ProteinMPNN designs sequences for given backbones.",
                            doi="10.1126/SCIENCE.ADD2187")])
    profile = load_profiles(directory).profiles["ada"]
    anchors, texts, notes = profile_anchors(store, profile)
    assert [a.source for a in anchors] == ["library"] * 6 and not notes
    by_label = dict(zip((a.label for a in anchors), texts, strict=True))
    # found by its DOI (case and dash differ): the store's abstract is what the model reads
    assert by_label["Robust deep learning-based protein sequence design using ProteinMPNN"] == \
        "Robust deep learning–based protein sequence design using ProteinMPNN. ProteinMPNN designs sequences " \
        "for given backbones."
    # not in the store: its own title; with an abstract of its own: title and abstract
    assert by_label["Evolutionary-scale prediction of atomic-level protein structure with a language model"] == \
        "Evolutionary-scale prediction of atomic-level protein structure with a language model"
    assert by_label["Highly accurate protein structure prediction with AlphaFold"].startswith(
        "Highly accurate protein structure prediction with AlphaFold. Proteins are essential to life")


@pytest.mark.parametrize("name, content, message", [
    ("cut.bib", (FIXTURES / "zotero.bib").read_text()[:1500],
     r"cut\.bib:\d+: the file ends inside this entry, so it looks cut off \(still being written\?\)"),
    ("cut.ris", (FIXTURES / "mendeley.ris").read_text()[:300],
     r'cut\.ris: the file ends inside an entry \(no closing "ER  -" line at the end\), so it looks cut off'),
    ("deep.json", "[" * 100_000 + "]" * 100_000, r"deep\.json: cannot read this CSL JSON file \(RecursionError"),
])
def test_a_cut_off_or_pathological_export_is_an_error_and_keeps_the_last_good_read(tmp_path, name, content, message):
    path = tmp_path / name
    shutil.copy(FIXTURES / {".bib": "zotero.bib", ".ris": "mendeley.ris", ".json": "zotero.json"}[path.suffix], path)
    good = read_library(path)
    assert good.error is None and good.seeds
    path.write_text(content)
    _touch_later(path)
    read = read_library(path)
    assert read.error and re.search(message, read.error), read.error
    assert read.stale and read.seeds == good.seeds
    # a first read of such a file has nothing to fall back on: an error, no seeds, and never an exception
    fresh = tmp_path / "fresh" / name
    fresh.parent.mkdir()
    fresh.write_text(content)
    first = read_library(fresh)
    assert first.error and not first.stale and first.seeds == ()


def test_endnote_utf16_ris_rich_text_csl_json_and_ris_title_and_pdf_tags_are_read(tmp_path):
    ris = "TY  - JOUR\r\nTI  - Caf\u00e9 <i>in vivo</i> CO<sub>2</sub> &amp; more\r\nER  - \r\n\r\n" \
          "TY  - CHAP\r\nCT  - A chapter with only CT\r\nL1  - https://arxiv.org/pdf/2401.00001v2\r\nER  - \r\n"
    for name, data in (("bom.ris", ris.encode("utf-16")), ("le.ris", ris.encode("utf-16-le")),
                       ("mac.ris", ris.replace("\r\n", "\r").encode("utf-16")),  # a classic Mac's line ends
                       ("be.ris", ris.encode("utf-16-be")), ("utf8.ris", ris.encode("utf-8-sig"))):
        (tmp_path / name).write_bytes(data)
        read = read_library(tmp_path / name)
        assert read.error is None, (name, read.error)
        assert [(s.title, s.arxiv) for s in read.seeds] == [("Café in vivo CO2 & more", None),
                                                            ("A chapter with only CT", "2401.00001")], name
    jabref = tmp_path / "jabref.bib"
    jabref.write_bytes("% Encoding: windows-1252\n@article{a, title={Caf\xe9 \u2013 cr\xe8me}}".encode("cp1252"))
    assert [s.title for s in read_library(jabref).seeds] == ["Caf\xe9 \u2013 cr\xe8me"]
    csl = tmp_path / "zotero.json"
    csl.write_text('[{"title": "<i>In vivo</i> CO<sub>2</sub> &amp; <span class=\\"nocase\\">pH</span> < 7"},'
                   ' {"title": {"text": "an object"}, "DOI": "10.1000/x"}, {"title": "  "}]')
    read = read_library(csl)
    assert [(s.title, s.doi) for s in read.seeds] == [("In vivo CO2 & pH < 7", None), (None, "10.1000/x")]
    assert read.problems == (f"{csl}:1: item 3 has an empty title and no DOI or arXiv id; skipped (give it a title)",)
    # a library wrapped in {"items": [...]} has its items read, and named by number (no line to point at)
    csl.write_text('{"items": [{"title": "A paper"}, {"DOI": "10.1000/y"}]}')
    assert read_library(csl).problems == (f'{csl}: item 2 has no "title"; skipped',)


def test_bibtex_string_macros_joined_with_hash_are_resolved_and_a_hash_in_a_title_stays(tmp_path):
    bib = tmp_path / "jabref.bib"
    bib.write_text('@string{nat = "Nature"}\n@STRING{ jr = {Journal {of} Things} }\n'
                   '@article{a, title = "Deep learning in " # nat}\n@article{b, title = {Part } # "two" # { of it}}\n'
                   '@article{c, title = {C# for {S}cience}}\n@article{d, title = jr # " in " # 2024}\n'
                   '@article{e, title = "A # in quotes"}\n@article{f, title = "Kept" # unknownmacro}\n'
                   '@string{ieee = "{IEEE} Trans"}\n@string{none = ""}\n@article{g, title = ieee # " on Things" # none}\n')
    read = read_library(bib)
    assert [s.title for s in read.seeds] == ["Deep learning in Nature", "Part two of it", "C# for Science",
                                             "Journal of Things in 2024", "A # in quotes", '"Kept" # unknownmacro',
                                             "IEEE Trans on Things"]


def test_odd_but_real_field_values_are_read_not_crashed_on(tmp_path):
    csl = tmp_path / "odd.json"
    csl.write_text('[{"title": "A paper", "DOI": 12345}, {"title": "Another", "DOI": ["10.1000/xyz"]},'
                   ' {"title": ["A", "list", "title"], "abstract": 7}]')
    read = read_library(csl)
    assert read.error is None
    assert [(s.title, s.doi, s.abstract) for s in read.seeds] == [
        ("A paper", None, None), ("Another", "10.1000/xyz", None), ("A list title", None, "7")]

    bib = tmp_path / "mendeley.bib"
    bib.write_text("@incollection{c1, title = {Chapter one: {Jets} with a {\\textless}10 GeV cut},\n"
                   "  doi = {10.1007/978-3-319-10590-1{\\_}53}, url = {https://arxiv.org/abs/2106.09685v2}}\n"
                   "@incollection{c2, title = {Chapter two}, doi = {10.1007/978-3-319-10590-1{\\_}53}}\n")
    first, second = read_library(bib).seeds   # two chapters may share a DOI: both are kept
    assert first.title == "Chapter one: Jets with a <10 GeV cut"
    assert first.doi == "10.1007/978-3-319-10590-1_53" and first.arxiv == "2106.09685"
    assert second.title == "Chapter two"

    merged = tmp_path / "merged.bib"  # two files pasted together: one key for two papers
    merged.write_text("@article{smith2020, title = {One paper}}\n@article{smith2020, title = {Another paper}}\n")
    read = read_library(merged)
    assert [s.title for s in read.seeds] == ["One paper", "Another paper"]
    assert read.problems == (f"{merged}:2: entry key 'smith2020' is used twice (both entries are read); give each "
                             "entry its own key",)

    ris = tmp_path / "cites.ris"
    ris.write_text("TY  - JOUR\nTI  - A follow-up\nN2  - We extend our earlier work (arXiv:1706.03762).\nER  - \n\n"
                   "TY  - JOUR\nTI  - Attention is all you need\nUR  - http://arxiv.org/abs/1706.03762\nER  - \n")
    follow_up, attention = read_library(ris).seeds   # an id cited in an abstract is not the entry's own
    assert follow_up.arxiv is None and follow_up.abstract.startswith("We extend")
    assert attention.arxiv == "1706.03762"


def test_digest_votes_bib_exports_the_liked_papers_and_a_library_reads_them_back(tmp_path):
    from digest.store import Store

    data = tmp_path / "data"
    store = Store(data / "digest.db")
    liked = [
        Paper("Schrödinger bridges for $\\alpha$-stable processes", authors=("Aurélien Dupont", "B. Roe"),
              abstract="We match 50% of the mass & more: a_b #1.", arxiv_id="2301.00001", published="2023-01-02",
              url="https://arxiv.org/abs/2301.00001"),
        Paper("Highly accurate protein structure prediction with AlphaFold", authors=("John Jumper",),
              author_count=34, doi="10.1038/s41586-021-03819-2", venue="Nature", published="2021-07-15"),
        Paper("Highly accurate protein structure prediction with AlphaFold: a reply", authors=("John Jumper",),
              published="2021-09-01"),  # same first author, year and word: the key must still be unique
    ]
    disliked = Paper("A survey of surveys", authors=("C. Doe",))
    ids = store.add_papers([*liked, disliked]).paper_ids
    for pid in ids[:3]:
        store.record_vote("ada", pid, 1)
    store.record_vote("ada", ids[3], -1)
    store.close()

    run = subprocess.run([sys.executable, "-m", "digest", "--config", "/dev/null", "--data-dir", str(data),
                          "votes", "ada", "--bib"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ada: 3 liked papers as BibTeX" in run.stderr
    exported = tmp_path / "ada-liked.bib"
    exported.write_text(run.stdout)
    read = read_library(exported)
    assert read.error is None and read.problems == ()
    assert [(s.title, s.arxiv, s.doi) for s in read.seeds[1:]] == [(p.title, p.arxiv_id, p.doi) for p in liked[1:]]
    assert read.seeds[0].arxiv == "2301.00001" and len(read.seeds) == len(liked)
    assert read.seeds[0].title == "Schrödinger bridges for α-stable processes"  # simple math read as Unicode
    assert read.seeds[0].abstract == "We match 50% of the mass & more: a_b #1."
    assert "A survey of surveys" not in run.stdout
    assert "{John Jumper and others}" in run.stdout  # 1 of 34 authors named: BibTeX's "et al."
    assert run.stdout.count(" and others}") == 1
    assert len(set(re.findall(r"^@\w+\{(\w+),", run.stdout, re.M))) == 3


def test_bibtex_export_of_a_scholar_paper_has_its_year_and_a_suffix_is_not_a_surname():
    from digest.library import to_bibtex

    scholar = Paper("Single-cell atlas of the aging kidney", authors=("X Su", "Edward G. Allen Jr"),
                    venue="Clinical and Translational …, 2026", source="google_scholar")
    proceedings = Paper("Mutation testing at scale", authors=("R Roe",),
                        venue="2019 IEEE International Conference on Software …", source="google_scholar")
    text = to_bibtex([scholar, Paper("Only a year in the byline", authors=("A Bee",), venue="2025"), proceedings])
    assert "@misc{su2026single," in text  # the key has the year too
    # a venue Scholar cut short is no journal's name (a reference manager would file it as one): a note
    assert "year = {2026}" in text and "note = {Clinical and Translational …}" in text and "journal" not in text
    # a proceedings' year opens its name
    assert "@misc{roe2019mutation," in text and "year = {2019}" in text
    assert "author = {X Su and Allen, Jr, Edward G.}" in text  # filed under Allen, not "Jr"
    assert "@misc{bee2025only," in text and "year = {2025}" in text and "journal = {2025}" not in text


def test_bibtex_export_of_an_arxiv_paper_takes_its_year_from_the_id_not_from_the_alert():
    from digest.library import to_bibtex

    # a revised 2022 paper in a 2024 listing, a 2024 paper forwarded from a trending page in 2026
    replaced = Paper("An older paper, revised", authors=("Ann Lee",), arxiv_id="2203.01234", published="2024-11-07")
    trending = Paper("ThinK: Thinner Key Cache by Query-Driven Pruning", arxiv_id="2407.21018", published="2026-12-05")
    old_style = Paper("Strings on orbifolds", authors=("B Old",), arxiv_id="hep-th/9901001")
    published = Paper("A preprint that became a journal paper", arxiv_id="2005.01234", venue="Nature, 2021")
    text = to_bibtex([replaced, trending, old_style, published])
    assert re.findall(r"year = \{(\d+)\}", text) == ["2022", "2024", "1999", "2021"]  # the journal's year
    assert "@misc{lee2022older," in text


def test_a_library_is_read_by_what_it_holds_whatever_its_name_says(tmp_path):
    ris = "TY  - JOUR\nTI  - Protein folding with language models\nDO  - 10.1000/ris.1\nER  - \n"
    bib = "@article{a, title = {Sparse attention for long documents}, doi = {10.1000/bib.1}}\n"
    for name, text, doi in [("My EndNote Library.txt", ris, "10.1000/ris.1"), ("export", ris, "10.1000/ris.1"),
                            ("bib-as.ris", bib, "10.1000/bib.1"), ("ris-as.bib", ris, "10.1000/ris.1")]:
        (tmp_path / name).write_text(text)
        read = read_library(tmp_path / name)
        assert read.error is None and [s.doi for s in read.seeds] == [doi], (name, read)
    # one space before the dash, as some exporters write RIS
    (tmp_path / "one-space.ris").write_text(ris.replace("  - ", " - "))
    assert [s.title for s in read_library(tmp_path / "one-space.ris").seeds] == ["Protein folding with language models"]


def test_pubmed_medline_and_endnote_tagged_exports_become_seed_papers(tmp_path):
    (tmp_path / "pubmed.nbib").write_text(
        "PMID- 30922926\nOWN - NLM\nTI  - Time lapse: A glimpse into prehistoric\n      genomics.\n"
        "LID - S1769-7212(19)30059-X [pii]\nLID - 10.1016/j.ejmg.2019.03.004 [doi]\n"
        "AB  - For the purpose of this review, 'time-lapse' refers to the reconstruction of\n"
        "      ancestral karyotypes.\nFAU - Griffin, Darren K\n\n"
        "PMID- 31000001\nTI  - A second record.\nAID - 10.1000/second [doi]\n")
    first, second = read_library(tmp_path / "pubmed.nbib").seeds
    assert first.title == "Time lapse: A glimpse into prehistoric genomics."
    assert first.doi == "10.1016/j.ejmg.2019.03.004" and first.abstract.endswith("ancestral karyotypes.")
    assert (second.title, second.doi) == ("A second record.", "10.1000/second")
    (tmp_path / "endnote.enw").write_text(
        "%0 Journal Article\n%T Superior techniques for eliminating ring artifacts\n%A Vo, Nghia T\n"
        "%R 10.1364/OE.26.028396\n%X We show two techniques.\n\n%0 Journal Article\n%A Nobody\n")
    read = read_library(tmp_path / "endnote.enw")
    assert [(s.title, s.doi, s.abstract) for s in read.seeds] == [
        ("Superior techniques for eliminating ring artifacts", "10.1364/oe.26.028396", "We show two techniques.")]
    assert read.problems == (f"{tmp_path / 'endnote.enw'}:7: a record without a title (EndNote tagged); skipped",)


def test_markup_and_escaped_math_in_exports_read_as_text(tmp_path):
    (tmp_path / "lib.bib").write_text(
        "@article{a, title = {Design of {\\(\\Sigma\\)}{\\(\\Delta\\)} modulators},\n"
        "  abstract = {{\\textless}p{\\textgreater}We report {\\textless}i{\\textgreater}Otx2{\\textless}/i"
        "{\\textgreater} in mice.{\\textless}/p{\\textgreater}}}\n"
        "@article{b, title={FuXi-$$\\backslash$alpha $: Scaling weather models}}\n")
    a, b = read_library(tmp_path / "lib.bib").seeds
    assert a.title == "Design of ΣΔ modulators" and a.abstract == "We report Otx2 in mice."
    assert b.title == "FuXi-α: Scaling weather models"
    (tmp_path / "lib.json").write_text(json.dumps([{"title": "A <i>title</i>", "abstract":
        "<jats:title>Abstract</jats:title><jats:p>We show <jats:italic>X</jats:italic> works.</jats:p>"
        "<jats:p>Second part.</jats:p>"}]))
    (item,) = read_library(tmp_path / "lib.json").seeds
    assert (item.title, item.abstract) == ("A title", "We show X works. Second part.")


def test_a_jabref_2_file_names_its_encoding_after_its_first_line(tmp_path):
    (tmp_path / "jabref.bib").write_bytes("% This file was created with JabRef 2.10.\n% Encoding: Cp1252\n\n"
                                          "@article{a, title = {Bæredygtige byer}}\n".encode("cp1252"))
    assert [s.title for s in read_library(tmp_path / "jabref.bib").seeds] == ["Bæredygtige byer"]


def test_a_field_given_twice_keeps_the_entry_and_ids_are_found_where_exporters_put_them(tmp_path):
    (tmp_path / "lib.bib").write_text(
        "@article{twice, title = {First title}, title = {Second title}}\n"
        "@article{mendeley, title = {Mendeley paper}, archivePrefix = {arXiv}, arxivId = {1610.04325}}\n"
        "@article{bare, title = {Bare eprint}, eprint = {2303.08774}}\n"
        "@article{s2, title = {Semantic Scholar paper}, journal = {ArXiv}, volume = {abs/2005.14165}}\n"
        "@article{old, title = {Old style}, journal = {arXiv preprint cs/0112017}}\n"
        "@article{url, title = {DOI in the URL}, url = {https://doi.org/10.1000/in.url}}\n"
        "@article{jstor, title = {On JSTOR}, eprinttype = {jstor}, eprint = {10.2307/1234567}}\n")
    read = read_library(tmp_path / "lib.bib")
    by_title = {s.title: s for s in read.seeds}
    assert "Second title" in by_title and any("gives title twice" in p for p in read.problems), read.problems
    assert [by_title[t].arxiv for t in ("Mendeley paper", "Bare eprint", "Semantic Scholar paper", "Old style")] == [
        "1610.04325", "2303.08774", "2005.14165", "cs/0112017"]
    assert (by_title["DOI in the URL"].doi, by_title["On JSTOR"].doi) == ("10.1000/in.url", "10.2307/1234567")


def test_angle_brackets_and_backslashes_of_plain_text_are_kept(tmp_path):
    (tmp_path / "lib.bib").write_text(
        "@article{a, title = {Effects when a<b and c>d hold}}\n"
        "@article{b, title = {Hardy inequality for 0<p and q>1}}\n"
        "@article{c, title = {The $\\backslash$n escape in C strings}}\n"
        "@article{d, title = {Estimates for $0<p\\le 1$ and $q>0$ spaces}}\n")
    titles = [s.title for s in read_library(tmp_path / "lib.bib").seeds]
    assert titles[:2] == ["Effects when a<b and c>d hold", "Hardy inequality for 0<p and q>1"]
    assert "\\" in titles[2] or "backslash" in titles[2]  # a literal backslash is not read as a TeX command
    assert titles[3] == "Estimates for 0 < p ≤ 1 and q > 0 spaces"  # math, read as math
    (tmp_path / "lib.nbib").write_text("PMID- 1\nTI  - Sparse regression in the n<p setting; when p>n it fails.\n")
    assert [s.title for s in read_library(tmp_path / "lib.nbib").seeds] == [
        "Sparse regression in the n<p setting; when p>n it fails."]
    (tmp_path / "lib.json").write_text(json.dumps([{"title": "Bounds for x<a and y>b in Lp",
                                                    "abstract": "A <span style=\"x\">styled</span> word"}]))
    (item,) = read_library(tmp_path / "lib.json").seeds
    assert (item.title, item.abstract) == ("Bounds for x<a and y>b in Lp", "A styled word")


def test_the_format_whose_entries_start_first_is_read_and_ris_lines_are_not_retagged(tmp_path):
    # an abstract line that looks like another format's entry ("@Risk (...)") does not decide the format
    (tmp_path / "endnote.txt").write_text("TY  - JOUR\nTI  - Risk models\nAB  - We used\n@Risk (Palisade)\nER  - \n")
    assert [s.title for s in read_library(tmp_path / "endnote.txt").seeds] == ["Risk models"]
    # a standard RIS file keeps a continuation line that reads like a one-space tag
    (tmp_path / "std.ris").write_text("TY  - JOUR\nTI  - Cohorts\nAB  - First line of the abstract\n"
                                      "US - based cohorts were followed.\nER  - \n")
    assert "US - based cohorts" in read_library(tmp_path / "std.ris").seeds[0].abstract
    # a DOI in a note names another paper: not this entry's
    (tmp_path / "note.bib").write_text("@article{a, title = {A reply}, note = {Comment on https://doi.org/10.1000/x}}\n")
    assert read_library(tmp_path / "note.bib").seeds[0].doi is None
