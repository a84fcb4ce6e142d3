"""Deduplication stages: exact (normalised-text hash) and MinHash LSH near-duplicates."""
