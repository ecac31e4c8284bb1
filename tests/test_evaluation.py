"""digest.evaluation.score with the real embedding model: the production ranking path on a tiny example."""

from __future__ import annotations

import pytest

from digest import evaluation

pytestmark = pytest.mark.model

SEEDS = ["Protein structure prediction with deep learning",
         "Accurate prediction of protein folding using neural networks"]
BACKGROUND = [
    'Monetary policy and inflation expectations',
    'A survey of medieval trade routes',
    'Galaxy rotation curves and dark matter',
    'Urban traffic flow simulation',
    'Soil erosion in agricultural catchments',
    'Bird migration and magnetic fields',
    'Sentiment analysis of movie reviews',
    'Earthquake early warning systems',
    'The history of the printing press',
    'Quantum error correction codes',
    'Gene regulatory networks in yeast',
    'Climate change and coral reef bleaching',
    'Social network analysis of online communities',
    'Wireless sensor network routing protocols',
    'The evolution of cooperation',
    'Statistical methods for microarray data',
    'Peer review and scientific publishing',
    'Cancer stem cells and tumour growth',
    'Reinforcement learning for robot control',
    'Phylogenetic analysis of bacterial genomes',
    'Collaborative tagging systems',
    'A model of human memory retrieval',
    'Graphene electronic properties',
    'Public health surveillance of influenza',
    'Software testing with symbolic execution',
    'Language acquisition in children',
    'Scale-free networks and preferential attachment',
    'Ocean circulation and heat transport',
    'Mass spectrometry for proteomics',
    'The economics of open access journals',
    'Image segmentation with graph cuts',
    'Neural correlates of consciousness',
    'Antibiotic resistance in hospital settings',
    'Distributed hash tables for peer-to-peer systems',
    'Population genetics of human migrations',
    'Topic models for document collections',
    'Protein-protein interaction networks',
    'Visual attention in primates',
    'Metabolic pathways of E. coli',
    'Semantic web ontologies',
]


def test_a_relevant_candidate_outranks_an_irrelevant_one():
    relevant = "Deep neural networks predict three-dimensional protein structures"
    irrelevant = "Tax incentives and small business growth in rural regions"
    scores = evaluation.score(SEEDS, [], [irrelevant, relevant], BACKGROUND)
    assert scores[1] > scores[0]


def test_a_thumbs_down_changes_the_order():
    a = "Neural network models of protein folding kinetics"
    b = "Protein structure determination by cryo-electron microscopy"
    before = evaluation.score(SEEDS, [], [a, b], BACKGROUND)
    disliked = "Neural-network models of protein folding kinetics"
    after = evaluation.score(SEEDS, [(disliked, 0)], [a, b], BACKGROUND)
    assert before[0] > before[1]
    assert after[0] < after[1]


def test_the_cache_embeds_each_text_once():
    evaluation.score(SEEDS, [], ["A new paper on protein design"], BACKGROUND)
    assert "A new paper on protein design" in evaluation._CACHE
