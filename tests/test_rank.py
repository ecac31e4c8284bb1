"""Ranking as pure numpy: tiny hand-made vectors, a small random background to calibrate against."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digest.models import Paper
from digest.profiles import Profile
from digest.rank import Anchor, _fold, _phrase_in, author_match, build_signals, rank, score_papers

DIM = 32


def unit(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for axis, value in pairs:
        v[axis] = value
    return v / np.linalg.norm(v)


def background(n: int = 200, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def profile(**kw) -> Profile:
    return Profile(user="ada", name="Ada", email="ada@example.org", **kw)


def signals(anchors: list[tuple[str, str, np.ndarray]], **kw):
    return build_signals(profile(**kw), [Anchor(kind, label) for kind, label, _ in anchors],
                         np.stack([v for _, _, v in anchors]))


def papers(n: int, **kw) -> list[Paper]:
    return [Paper(title=f"paper {i}", **kw) for i in range(n)]


def test_the_reason_names_the_facet_that_matched():
    sig = signals([("facet", "Protein design", unit((0, 1))), ("facet", "Galaxies", unit((1, 1)))])
    cands = np.stack([unit((0, 1), (2, 0.2)), unit((1, 1), (3, 0.2))])
    ranking = rank(sig, cands, papers(2), max_items=5, background_vecs=background())
    by_title = {s.paper.title: s for s in ranking.scored}
    assert by_title["paper 0"].facet == "Protein design"
    assert "Protein design" in by_title["paper 0"].reason
    assert "Galaxies" in by_title["paper 1"].reason
    json.dumps(by_title["paper 0"].details)  # the numbers behind the reason stay JSON-able


def test_a_paper_closer_to_a_broad_interest_than_to_the_one_it_is_listed_under_names_both():
    rng = np.random.default_rng(1)
    stream = rng.normal(size=(300, DIM)).astype(np.float32)
    stream[:, 0] += 3.0  # the broad interest's topic is all over the store
    stream /= np.linalg.norm(stream, axis=1, keepdims=True)
    sig = signals([("facet", "LLM inference", unit((0, 1))), ("facet", "ML for code", unit((1, 1)))])
    near_both, only_code = unit((0, 1.0), (1, 0.7)), unit((1, 1.0), (2, 0.8))
    ranking = rank(sig, np.stack([near_both, only_code]), papers(2), max_items=5, background_vecs=stream)
    by_title = {s.paper.title: s for s in ranking.scored}
    both, code = by_title["paper 0"], by_title["paper 1"]
    # listed under the interest it stands out for (z), though closer to the broad one: the reason says both
    assert both.facet == "ML for code" and both.details["also"]["similarity"] > both.details["match"]["similarity"]
    assert both.reason == "Matches your interest “ML for code” (0.57); also your interest “LLM inference” (0.82)"
    assert "also" not in code.details and "LLM inference" not in code.reason  # not a strong match: not named


def test_a_muted_author_drops_out():
    sig = signals([("seed", "A seed", unit((0, 1)))], mute_authors=("Jane Doe",))
    cands = np.stack([unit((0, 1), (2, 0.1)), unit((0, 1), (3, 0.3))])
    items = [Paper(title="by Jane", authors=("J. Doe",)), Paper(title="by someone else", authors=("Bob Roe",))]
    ranking = rank(sig, cands, items, max_items=5, floor=0.0, background_vecs=background())
    assert [s.paper.title for s in ranking.picked] == ["by someone else"]
    muted = next(s for s in ranking.scored if s.paper.title == "by Jane")
    assert muted.details["muted"] == ["Jane Doe"] and muted.reason.startswith("Muted")


@pytest.mark.parametrize("wanted", ["Yann LeCun", "LeCun, Yann", "LeCun, Y.", "Y. LeCun", "LeCun"])
@pytest.mark.parametrize("written", ["Yann LeCun", "Y LeCun", "Y. LeCun", "LeCun Y", "LeCun, Yann", "Yann Lécun"])
def test_an_author_matches_however_the_profile_and_the_source_write_the_name(wanted, written):
    # BibTeX's "Last, First" in a profile, PubMed's "LeCun Y" and Scholar's "Y LeCun" in alerts
    assert author_match(wanted, ["Someone Else", written])


@pytest.mark.parametrize("wanted, written", [
    ("Yann LeCun", "Jan LeCun"), ("Yann LeCun", "LeCun J"), ("LeCun, Yann", "Yann Cun"),
    ("Ana Prates", "Prates Bo"), ("Laurens van der Maaten", "Laurens van der Berg"), ("", "Yann LeCun")])
def test_an_author_with_another_surname_or_initial_does_not_match(wanted, written):
    assert not author_match(wanted, [written])


def test_particles_accents_and_suffixes_do_not_hide_an_author():
    assert author_match("van der Maaten, Laurens", ["L van der Maaten"])
    assert author_match("Bernhard Schölkopf", ["Scholkopf B"])
    assert author_match("Martin Luther King Jr.", ["King, Martin Luther, Jr."])
    assert author_match("Ana Prates", ["Muradali D", "Prates AC"])
    # a short surname in capitals reads like PubMed's initials too: both readings are tried
    assert author_match("Wei Li", ["Wei LI"]) and author_match("Andrew Ng", ["Andrew NG"])
    assert author_match("Wei Liu", ["Wei LIU"]) and not author_match("Wei Liu", ["Bo LIU"])


@pytest.mark.parametrize("keyword, text", [
    ("KV cache", "Compressing KV caches for long contexts"), ("KV cache", "A KV-cache eviction policy"),
    ("kv-cache", "the KV cache of a transformer"), ("survey", "Surveys of the field"), ("LLM", "LLMs as judges"),
    ("Schrödinger bridge", "Schrodinger bridges for generative modelling"), ("C++", "A C++ library")])
def test_a_keyword_finds_plurals_hyphens_and_accents(keyword, text):
    assert _phrase_in(keyword, _fold(text))


@pytest.mark.parametrize("keyword, text", [
    ("GAN", "An organ atlas"), ("survey", "We surveyed the field"), ("diffusion", "diffusional creep"),
    ("KV cache", "KV and cache"), (",", "a, b")])
def test_a_keyword_is_not_found_inside_other_words(keyword, text):
    assert not _phrase_in(keyword, _fold(text))


def test_a_boosted_keyword_raises_a_paper_and_says_so():
    sig = signals([("seed", "A seed", unit((0, 1)))], boost_keywords=("diffusion",))
    cands = np.stack([unit((0, 1), (2, 0.3)), unit((0, 1), (2, 0.3))])
    items = [Paper(title="plain"), Paper(title="a diffusion model")]
    scored = score_papers(sig, cands, items, background_vecs=background())
    assert scored[1].score > scored[0].score
    assert "“diffusion”" in scored[1].reason and scored[1].details["keywords"] == ["diffusion"]


def test_a_thumbs_down_lowers_a_near_duplicate():
    seed = ("seed", "A seed", unit((0, 1)))
    near_dup = unit((0, 1), (4, 0.8))       # close to the seed, and nearly the paper voted down
    other = unit((0, 1), (5, 0.8))          # as close to the seed, unrelated to the vote
    cands = np.stack([near_dup, other])
    before = score_papers(signals([seed]), cands, papers(2), background_vecs=background())
    assert abs(before[0].score - before[1].score) < 0.05
    after = score_papers(signals([seed, ("disliked", "Voted down", unit((0, 1), (4, 0.9)))]), cands, papers(2),
                         background_vecs=background())
    assert after[0].score < after[1].score - 0.05
    assert "Voted down" in after[0].reason and after[0].details["dislike"]["penalty"] > 0


def test_mmr_keeps_a_niche_facet_in_the_picks():
    sig = signals([("facet", "Hot topic", unit((0, 1))), ("facet", "Niche", unit((1, 1)))])
    hot = [unit((0, 1), (2 + i % 5, 0.1 + 0.02 * i)) for i in range(8)]
    niche = [unit((1, 1), (2, 0.7))]           # a weaker match, but the only one for its facet
    ranking = rank(sig, np.stack(hot + niche), papers(9), max_items=4, floor=0.1, background_vecs=background())
    assert len(ranking.picked) == 4
    assert "Niche" in {s.facet for s in ranking.picked}
    assert ranking.scored[0].facet == "Hot topic"


def test_nothing_above_the_floor_is_a_quiet_day():
    sig = signals([("seed", "A seed", unit((0, 1)))])
    cands = np.stack([unit((0, -1), (i, 0.5)) for i in range(2, 6)])  # pointing away from the seed
    ranking = rank(sig, cands, papers(4), max_items=5, background_vecs=background())
    assert ranking.picked == []
    assert len(ranking.scored) == 4


def other_field(seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A store of another field (axes 8-15) and 40 of its papers as candidates, each a little towards axis 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(340, DIM)).astype(np.float32) * 0.3
    x[:, 8:16] += rng.normal(size=(340, 8)) + 2.0
    x[:, 0] += rng.uniform(0.0, 0.6, size=340)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:40], x[40:]


def test_in_a_store_of_another_field_what_clears_the_floor_is_held_back_as_a_loose_match():
    sig = signals([("facet", "Coral reefs", unit((0, 1))), ("seed", "A reef paper", unit((0, 1), (1, 0.3)))])
    cands, store = other_field()
    closest = (cands @ sig.vectors.T).max(axis=1)
    assert closest.max() < 0.4  # nothing in this store is near the reader's field
    plain = rank(sig, cands, papers(40), max_items=10, background_vecs=store)
    assert plain.picked  # the floor alone lets the store's least unrelated papers through
    held = rank(sig, cands, papers(40), max_items=10, background_vecs=store, min_similarity=0.4)
    assert held.picked == [] and held.cleared() == []  # a quiet day
    assert [s.score for s in held.scored] == [s.score for s in plain.scored]  # no score changes
    loose = held.loose()
    assert {s.paper.title for s in loose} == {s.paper.title for s in plain.scored if s.score >= plain.floor}
    assert all("held back: a loose match" in s.reason and s.details["closest"] < 0.4 for s in loose)
    assert held.below(100)[:len(loose)] == loose  # shown on the page, to vote on
    # a bar below the store's best matches holds back only the papers under it
    bar = float(np.sort(closest)[-3])
    some = rank(sig, cands, papers(40), max_items=10, background_vecs=store, min_similarity=bar)
    assert all(s.details["closest"] >= bar for s in some.picked) and some.picked
    assert all(s.details["closest"] < bar for s in some.loose())


def test_a_real_match_in_a_store_of_another_field_is_picked_and_a_floor_of_zero_holds_nothing_back():
    sig = signals([("facet", "Coral reefs", unit((0, 1)))])
    cands, store = other_field()
    cands = np.vstack([unit((0, 1), (9, 0.4)), cands])  # one paper of the reader's field arrived
    ranking = rank(sig, cands, papers(41), max_items=10, background_vecs=store, min_similarity=0.4)
    assert [s.paper.title for s in ranking.picked] == ["paper 0"]
    assert ranking.picked[0].details["closest"] > 0.9 and "loose" not in ranking.picked[0].details
    anything = rank(sig, cands, papers(41), max_items=50, floor=0.0, background_vecs=store, min_similarity=0.4)
    assert not anything.loose() and len(anything.picked) > 1


def test_a_boosted_keyword_or_author_is_never_held_back_as_a_loose_match():
    sig = signals([("facet", "Coral reefs", unit((0, 1)))], boost_keywords=("sponges",), boost_authors=("Ana Reef",))
    cands, store = other_field()
    items = papers(40)
    # the second and third of the store's ranking (the first, 'paper 30', stays unboosted)
    first, second = (int(s.paper.title.split()[1]) for s in rank(sig, cands, items, max_items=10,
                                                                  background_vecs=store).scored[1:3])
    items[first] = Paper(title="Sponges of the deep shelf")
    items[second] = Paper(title="Another paper", authors=("A. Reef",))
    ranking = rank(sig, cands, items, max_items=10, background_vecs=store, min_similarity=0.4)
    assert {s.paper.title for s in ranking.picked} == {"Sponges of the deep shelf", "Another paper"}
    assert [s.paper.title for s in ranking.loose()] == ["paper 30"]  # the store's first, unboosted


def test_the_floor_is_calibrated_across_score_scales():
    """Two users whose raw cosines live on very different scales get about as many picks at the same floor."""
    rng = np.random.default_rng(1)
    seed_vec = unit((0, 1))
    # today's candidates: a few close to the seed, most random
    base = np.vstack([seed_vec + rng.normal(scale=0.1, size=DIM) for _ in range(6)] + [background(40, seed=2)])
    world = np.vstack([base, background(300, seed=3)])
    common = unit((7, 1))

    def counts(shift: float) -> tuple[int, float]:
        # an anisotropic model adds a shared direction to every vector: all cosines move up together
        x = world + shift * common
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        cands, bg, anchor = x[: len(base)], x[len(base):], (x[0] + 0) / np.linalg.norm(x[0])
        sig = signals([("seed", "A seed", anchor)])
        ranking = rank(sig, cands, papers(len(cands)), max_items=50, floor=0.25, background_vecs=bg)
        return len(ranking.picked), float((bg @ anchor).mean())

    flat, flat_mean = counts(0.0)
    steep, steep_mean = counts(1.5)
    assert steep_mean - flat_mean > 0.3         # very different raw scales...
    assert 3 <= flat <= 10 and abs(flat - steep) <= 2   # ...about the same number of picks


def test_a_strong_single_facet_match_outranks_a_paper_vaguely_close_to_everything():
    facets = [("facet", "Efficient inference", unit((0, 1))), ("facet", "Code models", unit((1, 1))),
              ("facet", "Video", unit((2, 1)))]
    seeds = [("seed", "Seed A", unit((1, 1), (3, 1))), ("seed", "Seed B", unit((0, 0.3), (4, 1)))]
    specialist = unit((0, 1), (5, 0.45))                        # squarely inside one facet, nothing else
    generalist = unit((0, 0.5), (1, 0.5), (2, 0.5), (3, 0.4), (4, 0.4), (6, 0.4))  # a bit like every anchor
    assert (specialist @ facets[0][2]) > 0.85
    sims = np.stack([v for _, _, v in facets + seeds]) @ np.stack([specialist, generalist]).T
    assert sims[:, 1].mean() > sims[:, 0].mean()                # on average the generalist is closer
    scored = score_papers(signals(facets + seeds), np.stack([generalist, specialist]), papers(2),
                          background_vecs=background())
    assert scored[1].score > scored[0].score
    assert "Efficient inference" in scored[1].reason and scored[1].facet == "Efficient inference"


def test_a_niche_facet_match_is_not_averaged_away_by_a_heavy_seed_set():
    facets = [("facet", "Main", unit((0, 1))), ("facet", "Niche", unit((1, 1)))]
    seeds = [("seed", f"Seed {i}", unit((0, 1), (2 + i, 0.5))) for i in range(5)]
    niche = unit((1, 1), (8, 0.3))
    ranking = rank(signals(facets + seeds), np.stack([niche]), papers(1), max_items=5,
                   background_vecs=background())
    assert ranking.picked and ranking.picked[0].facet == "Niche"


def test_no_anchors_at_all_ranks_nothing_and_does_not_crash():
    empty = build_signals(profile(), [], np.zeros((0,), dtype=np.float32))
    cands = np.stack([unit((0, 1)), unit((1, 1))])
    ranking = rank(empty, cands, papers(2), max_items=5, background_vecs=background())
    assert ranking.picked == [] and len(ranking.scored) == 2
    assert all(s.reason == "No strong match" for s in ranking.scored)
    # without a background either, and with only a thumbs-down
    assert rank(empty, cands, papers(2), max_items=5).picked == []
    only_down = signals([("disliked", "Voted down", unit((0, 1)))])
    assert rank(only_down, cands, papers(2), max_items=5, background_vecs=background()).picked == []


def hub_world():
    """A background with a dense cluster around axis 5, and two candidates equally close to the seed: one
    in that cluster's direction (close to everything there), one in an empty direction."""
    bg = background(200)
    rng = np.random.default_rng(1)
    cluster = unit((5, 1)) + 0.3 * rng.normal(size=(60, DIM)).astype(np.float32) / np.sqrt(DIM)
    bg = np.vstack([bg, cluster / np.linalg.norm(cluster, axis=1, keepdims=True)])
    cands = np.stack([unit((0, 1), (5, 1)), unit((0, 1), (6, 1))])
    return bg, cands


def scored_by_hub_weight(monkeypatch, anchor: tuple[str, str, np.ndarray]) -> dict:
    """The two hub_world candidates scored with the correction off (0.0) and at its shipped strength (0.9)."""
    import digest.rank as rank_module

    bg, cands = hub_world()
    out = {}
    for weight in (0.0, 0.9):
        monkeypatch.setattr(rank_module, "HUB_WEIGHT", weight)
        out[weight] = score_papers(signals([anchor]), cands, papers(2), background_vecs=bg)
    return out


def test_hubness_discounts_a_paper_close_to_everything_for_seeds(monkeypatch):
    gaps = {}
    for weight, (hub, lone) in scored_by_hub_weight(monkeypatch, ("seed", "A seed", unit((0, 1)))).items():
        gaps[weight] = lone.details["knn_z"] - hub.details["knn_z"]
        # the reason shows the plain cosine to the seed (0.71), not the corrected one
        assert hub.details["match"]["similarity"] == lone.details["match"]["similarity"] == 0.707
        assert "(0.71)" in hub.reason
    # equally close to the seed; the one in the crowded direction loses sigmas once hubness counts
    assert abs(gaps[0.0]) < 0.05 and gaps[0.9] > 0.5


def test_hubness_leaves_facets_alone(monkeypatch):
    scored = scored_by_hub_weight(monkeypatch, ("facet", "Something", unit((0, 1))))
    assert [s.score for s in scored[0.0]] == [s.score for s in scored[0.9]]


def test_the_shipped_ranking_applies_the_hubness_correction():
    bg, cands = hub_world()
    hub, lone = score_papers(signals([("seed", "A seed", unit((0, 1)))]), cands, papers(2), background_vecs=bg)
    assert lone.details["knn_z"] - hub.details["knn_z"] > 0.5


def test_a_candidate_in_the_background_sample_is_not_its_own_neighbour():
    # in production the background is a sample of the same store, so a candidate may be in it: its cosine of
    # 1 with itself must not make it look crowded
    bg, cands = hub_world()
    sig = signals([("seed", "A seed", unit((0, 1)))])
    alone = score_papers(sig, cands, papers(2), background_vecs=bg)
    inside = score_papers(sig, cands, papers(2), background_vecs=np.vstack([bg, cands[1:]]))
    assert abs(inside[1].details["knn_z"] - alone[1].details["knn_z"]) < 0.3


def test_a_heavy_facet_lifts_its_own_papers_not_every_paper():
    """A facet weighted 5 added 2 sigmas to every paper's match with it: a paper squarely inside another
    interest was listed under the heavy one at a cosine near zero ("Matches your interest “Video generation”
    (0.17)") and papers it barely resembles ranked as its matches."""
    anchors = (Anchor("facet", "Video generation", 5.0), Anchor("facet", "LLM inference", 1.0))
    sig = build_signals(profile(), list(anchors), np.stack([unit((0, 1)), unit((1, 1))]))
    inside_llm = unit((1, 0.53), (0, 0.21), (2, 0.82))  # an LLM-inference paper (z ~3), faintly like video (z ~1)
    video = unit((0, 1), (3, 0.6))               # a clear video-generation paper
    neither = unit((4, 1), (0, 0.15))            # faintly like video, really about something else
    scored = score_papers(sig, np.stack([inside_llm, video, neither]), papers(3), background_vecs=background())
    assert scored[0].facet == "LLM inference" and scored[0].reason.startswith("Matches your interest “LLM inference”")
    assert scored[1].facet == "Video generation"
    # the weight still counts where the paper matches: a video paper of the same closeness wins over an LLM one
    same = score_papers(sig, np.stack([unit((0, 1), (3, 0.6)), unit((1, 1), (3, 0.6))]), papers(2),
                        background_vecs=background())
    assert same[0].score > same[1].score
    assert scored[2].score < min(scored[0].score, scored[1].score)
    assert "Video generation" not in scored[2].reason.split("nearest")[0]


def test_a_paper_carried_by_a_keyword_does_not_claim_a_match_it_does_not_have():
    """"Matches your interest “Robotics” (0.02)" on a paper picked for a boosted keyword: the reason now names
    what carried it, and a paper with nothing near says so with its nearest anchor."""
    sig = signals([("facet", "Robotics", unit((0, 1))), ("seed", "A seed", unit((1, 1)))],
                  boost_keywords=("time to first token",))
    far = unit((5, 1), (6, 0.2))
    items = [Paper(title="KV prediction for improved time to first token"), Paper(title="plain")]
    scored = score_papers(sig, np.stack([far, far]), items, background_vecs=background())
    assert scored[0].reason == "Mentions “time to first token”", scored[0].reason
    assert scored[1].reason.startswith("No strong match (nearest: ") and scored[1].details["match"]["anchor_z"] < 1
    near = score_papers(sig, np.stack([unit((1, 1), (5, 0.2))]), papers(1), background_vecs=background())[0]
    assert near.reason.startswith("Close to your seed paper “A seed”")
