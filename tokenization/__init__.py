"""Tokenization: the mix stage (token shares per domain and source), sentencepiece training,
parallel encoding and Megatron indexed shards."""
