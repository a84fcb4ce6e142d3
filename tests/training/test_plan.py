"""`thresher plan` reproduces the seeds' memory and Chinchilla tables."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from training.plan import pair, parse_count


def plan_json(capsys, *args) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_memory_table_of_the_seeds(capsys):
    one_b = plan_json(capsys, "--params", "1B")
    assert one_b["store_gb_fp32"] == pytest.approx(4.0)
    assert one_b["train_gb_fp32"] == pytest.approx(24.0)
    assert one_b["store_gb_bf16"] == pytest.approx(2.0)  # bf16 halves the weights
    assert plan_json(capsys, "--params", "175B")["train_gb_fp32"] == pytest.approx(4200, rel=0.01)
    assert plan_json(capsys, "--params", "500B")["train_gb_fp32"] == pytest.approx(12000, rel=0.01)


def test_fsdp_divides_the_per_gpu_memory_by_the_sharding_factor(capsys):
    one = plan_json(capsys, "--params", "1B")
    eight = plan_json(capsys, "--params", "1B", "--gpus", "8")
    assert one["train_gb_per_gpu"] == pytest.approx(24.0)
    assert eight["train_gb_per_gpu"] == pytest.approx(3.0)
    assert plan_json(capsys, "--params", "1B", "--precision", "bf16")["train_gb_per_gpu"] == pytest.approx(12.0)


@pytest.mark.parametrize("params, tokens, flops", [
    ("400M", 8.0e9, 1.92e19),    # Hoffmann et al. 2022, Table 3
    ("1B", 20.2e9, 1.21e20),
    ("10B", 205.1e9, 1.23e22),
    ("70B", 1.4e12, None),       # Chinchilla itself
])
def test_compute_optimal_pairs_of_the_chinchilla_table(capsys, params, tokens, flops):
    result = plan_json(capsys, "--params", params)
    assert result["tokens"] == pytest.approx(tokens, rel=0.03)
    if flops:
        assert result["flops"] == pytest.approx(flops, rel=0.03)
    # and back: the FLOP budget alone gives the same model size
    if flops:
        assert plan_json(capsys, "--flops", str(flops))["params"] == pytest.approx(parse_count(params), rel=0.03)


def test_flops_petaflop_days_and_gpu_hours(capsys):
    result = plan_json(capsys, "--params", "1B", "--tokens", "100B", "--mfu", "0.5", "--gpus", "8")
    assert result["flops"] == pytest.approx(6e20)
    assert result["pf_days"] == pytest.approx(6e20 / 8.64e19)
    assert result["gpu_hours"]["H100"] == pytest.approx(6e20 / (989e12 * 0.5) / 3600)
    assert result["gpu_hours"]["A100"] == pytest.approx(6e20 / (312e12 * 0.5) / 3600)
    assert result["days"]["H100"] == pytest.approx(result["gpu_hours"]["H100"] / 8 / 24)
    assert result["tokens_per_param"] == pytest.approx(100)


def test_tokens_from_a_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"domains": {"a": {"tokens": 3_000_000},
                                                                    "b": {"tokens": 1_000_000}}}))
    result = plan_json(capsys, "--manifest", str(tmp_path))
    assert result["tokens"] == 4e6 and result["params"] == pytest.approx(2e5)


def test_human_output_names_every_quantity(capsys):
    assert main(["plan", "--params", "1B"]) == 0
    out = capsys.readouterr().out
    for word in ("20B", "1.2e+20", "petaflop/s-days", "A100 hours", "H100 hours", "24.0 GB fp32"):
        assert word in out


def test_bad_input_exits_2_naming_the_option(capsys):
    assert main(["plan", "--params", "lots"]) == 2
    assert "--params: 'lots' is not a number" in capsys.readouterr().err
    assert main(["plan", "--params", "1B", "--tokens", "1T", "--flops", "1e20"]) == 2
    assert "at most two" in capsys.readouterr().err
    with pytest.raises(ValueError, match="give one or two"):
        pair(None, None, None)


def test_parse_count_suffixes():
    assert parse_count("400M") == 4e8 and parse_count("1.4T") == 1.4e12 and parse_count("1,000") == 1000
    assert parse_count("7e9") == 7e9 and parse_count("20.2b") == 20.2e9
