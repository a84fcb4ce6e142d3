"""Deduplication stages: exact (normalised-text hash), MinHash LSH near-duplicates, normalised-URL
dedup, repeated paragraph/line removal, and decontamination against benchmark sets (word n-grams)."""
