"""Lineage: `thresher trace OUTPUT` answers "where did this document come from, and why was
it kept (or dropped)?" from a finished run's outputs, without recomputing anything.

    thresher trace out/demo --doc "crawl/crawl-00000.warc.gz@7296"
    thresher trace out/demo --shard financial/shard-00000 --index 3      # a sequence of a token shard
    thresher trace out/demo --shard financial/shard-00000 --token 1200   # the sequence holding a token
    thresher trace out/demo --text "holds rates steady" [--limit 5]      # documents of the final stage
    thresher trace out/demo --doc ID --json                              # the same, as JSON

It prints the origin (input file, WARC record offset or line, URL, crawl date), every stage's
decision with the scores it recorded, the dedup cluster, the mix copies and where the tokens
are (`pipeline.trace.lineage`); ids are found by a filter pushed down to the Parquet row-group
statistics (`pipeline.trace.lookup`), so an answer takes seconds on a run of 10^6 documents
(`bench/trace.py`).
"""

from __future__ import annotations

import argparse
import json


def cmd_trace(args: argparse.Namespace) -> int:
    from pipeline.trace.lineage import trace_document, trace_sequence, trace_text
    from pipeline.trace.lookup import RunLayout
    from pipeline.trace.render import render

    asked = [name for name in ("doc", "shard", "text") if getattr(args, name) is not None]
    if len(asked) != 1:
        raise ValueError("thresher trace: give exactly one of --doc ID, --shard DOMAIN/shard-NNNNN "
                         "(with --index N or --token T) or --text SNIPPET")
    if (args.index is not None or args.token is not None) != (args.shard is not None) or \
            (args.index is not None and args.token is not None):
        raise ValueError("--shard: give it with one of --index N (a sequence) or --token T (a token offset)")
    layout = RunLayout.open(args.output)
    if args.doc is not None:
        traces = [trace_document(layout, args.doc)]
    elif args.shard is not None:
        traces = [trace_sequence(layout, args.shard, args.index, args.token)]
    else:
        traces = trace_text(layout, args.text, args.limit)
    if args.json:
        print(json.dumps(traces[0] if args.text is None else traces, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(render(t) for t in traces))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "trace", help="a document's lineage: origin, every stage's decision, where its tokens are",
        description="Trace one document of a finished run from its outputs: its origin (file, WARC record "
                    "offset or line, URL, crawl date), each stage's decision and scores, its dedup cluster, "
                    "mix copies and the shard sequences holding its tokens.")
    p.add_argument("output", metavar="OUTPUT", help="the run's output folder")
    p.add_argument("--doc", metavar="ID", help="a document id (source/file.warc.gz@OFFSET, source/file.jsonl:LINE)")
    p.add_argument("--shard", metavar="DOMAIN/shard-NNNNN", help="a token shard of the tokenize stage")
    p.add_argument("--index", type=int, metavar="N", help="with --shard: the sequence's index in the shard")
    p.add_argument("--token", type=int, metavar="T", help="with --shard: a token offset in the shard")
    p.add_argument("--text", metavar="SNIPPET", help="trace the documents of the final stage containing SNIPPET")
    p.add_argument("--limit", type=int, default=5, metavar="N", help="with --text: at most N documents (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_trace)
