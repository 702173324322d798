"""Recommender app (owned by its own team; the foundation only registers it)."""
