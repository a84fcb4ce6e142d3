"""Tokenization: sentencepiece training, parallel encoding and Megatron indexed shards."""

# Modules whose import registers stages (see pipeline.stage.load_registry).
STAGE_MODULES = ("tokenization.stage",)
