"""digest: a self-hosted, personalized research-paper digest built from your alert emails."""

__version__ = "0.1.0"
