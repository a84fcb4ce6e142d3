"""`thresher demo`: write a small synthetic crawl (see `crawl.py`), train the demo's fastText
classifiers on it (`models.py`), run `configs/demo.yaml` over it, and write the report,
printing where the outputs, the stats and the report are.

    thresher demo --output out/demo
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import ConfigError, load_config

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def run_demo(output: str, workers: int | None = None, progress: bool = True, scheduler: str | None = None,
             keep_intermediate: bool = False, guards: bool = True) -> int:
    from pipeline.cluster import open_client
    from pipeline.demo.crawl import write_sample
    from pipeline.demo.models import train_demo_models
    from pipeline.report import write_report
    from pipeline.runner import Runner, print_summary

    if "://" in output:  # the sample crawl and the demo's models are written with local file APIs
        raise ConfigError(f"--output: {output!r} is a URL; the demo writes a local folder (`thresher run` writes "
                          "to s3://, see the README's Object storage)")
    sample = write_sample(Path(output) / "sample")
    print(f"sample crawl written to {sample}")
    models = Path(output) / "models"
    for name, path in train_demo_models(sample, models).items():
        print(f"{name} classifier trained: {path}")
    os.environ["DEMO_SAMPLE"], os.environ["DEMO_MODELS"] = str(sample), str(models)
    config = load_config(DEMO_CONFIG, output=output)
    with open_client(scheduler, workers) as client:
        summary = Runner(config, client, progress=progress, keep_intermediate=keep_intermediate,
                         guards=guards).run()
        report = write_report(output, client=client)
    print_summary(summary)
    print(f"report:  {report}")
    return 0
