"""Document filters and scorers: language id, heuristic quality rules, URL/PII, fastText
classifiers. Each is a registered stage (see `pipeline.stage`, listed in `pipeline.registry`);
`thresher list` shows them."""
