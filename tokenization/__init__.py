"""Tokenization: sentencepiece training, parallel encoding and Megatron indexed shards."""
