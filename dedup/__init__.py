"""Deduplication stages: exact (normalised-text hash), MinHash LSH near-duplicates,
normalised-URL dedup, and decontamination against benchmark sets (word n-gram overlap)."""

STAGE_MODULES = ("dedup.exact", "dedup.stages", "dedup.decontaminate", "dedup.url")
