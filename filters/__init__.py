"""Document filters and scorers: language id, heuristic quality rules, URL/PII, fastText
classifiers. Each is a registered stage (see `pipeline.stage`); `thresher list` shows them."""

# Modules whose import registers stages (see pipeline.stage.load_registry).
STAGE_MODULES = ("filters.language", "filters.classify", "filters.select", "filters.gopher", "filters.c4",
                 "filters.fineweb", "filters.url", "filters.pii", "filters.generic", "filters.lm_score",
                 "filters.lm_buckets")
