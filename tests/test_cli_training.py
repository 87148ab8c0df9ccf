"""``deeplimit train`` and ``deeplimit limit``: result files with provenance, divergence exits 3
with the step, bad input exits 2 with one line, help with examples."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimit.cli import app
from deeplimit.results import load_result

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", ["train", "limit"])
def test_help_shows_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and f"deeplimit {command}" in result.output


def test_train_writes_records_with_provenance(tmp_path):
    out = tmp_path / "run.nc"
    result = invoke(
        "train", "-L", 4, "-M", 16, "-D", 8, "-K", 3, "--seeds", 3, "--seed", 5, "--out", out
    )
    assert result.exit_code == 0, result.output
    dataset, provenance = load_result(out)
    assert dataset["outputs"].dims == ("seed", "step", "sample", "output")
    assert dataset["outputs"].shape == (3, 4, 10, 5)
    assert dataset["embeddings"].shape == (3, 4, 10, 8)
    assert list(dataset["diverged_at"].values) == [-1, -1, -1]
    assert set(dataset.data_vars) >= {"loss", "movement_u", "movement_preactivation", "w_in"}
    loss = dataset["loss"].values
    assert np.all(loss[:, -1] < loss[:, 0])
    config = provenance["config"]
    assert provenance["seed"] == 5 and provenance["version"]
    assert config["depth"] == 4 and config["width"] == 16 and config["dim"] == 8
    assert config["raw_learning_rate"] == pytest.approx(0.5 * 4 * 16 * 8)
    assert config["residual_scale"] == pytest.approx(1 / 64)
    assert "loss" in result.output and "wrote" in result.output


def test_train_attention_heads_writes_a_token_axis(tmp_path):
    out = tmp_path / "heads.nc"
    args = ("-L", 2, "-M", 4, "-D", 8, "-K", 2, "-S", 2, "--block", "attention")
    result = invoke("train", *args, "--key-dim", 2, "--tokens", 3, "--out", out)
    assert result.exit_code == 0, result.output
    dataset, provenance = load_result(out)
    assert dataset["embeddings"].dims == ("seed", "step", "sample", "token", "coordinate")
    assert dataset["embeddings"].shape == (2, 3, 10, 3, 8) and dataset["x"].shape == (10, 3, 5)
    assert set(dataset.data_vars) >= {"movement_q", "movement_k", "movement_u", "movement_v"}
    assert provenance["config"]["block"] == "attention(T=3, d_k=2, tanh)"
    assert np.all(dataset["loss"].values[:, -1] < dataset["loss"].values[:, 0])
    refused = invoke("limit", "-D", 8, "-K", 2, "--against", out, "--out", tmp_path / "l.nc")
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1 and "attention heads" in lines[0]


def test_limit_against_a_run_reports_its_error_per_step(tmp_path):
    run = tmp_path / "run.nc"
    common = ("-K", 3, "--activation", "identity")
    assert (
        invoke("train", "-L", 8, "-M", 64, "-D", 8, "-S", 4, "--out", run, *common).exit_code == 0
    )
    out = tmp_path / "limit.nc"
    result = invoke("limit", "-D", 8, "--against", run, "--out", out, *common)
    assert result.exit_code == 0, result.output
    dataset, provenance = load_result(out)
    assert dataset.attrs["method"] == "exact"
    assert dataset["embeddings"].shape == (4, 10, 8)
    errors = dataset["embedding_error"].values
    assert errors.shape == (4,) and np.all(np.isfinite(errors))
    assert errors[-1] < 3 * math.sqrt(8 / (8 * 64))  # c sqrt(D/(LM)) with c = O(1)
    assert "step   3" in result.output and provenance["config"]["against"] == str(run)
    span = tmp_path / "span.nc"
    result = invoke("limit", "-D", 8, "--method", "span", "--infinite-dim", "--out", span, *common)
    assert result.exit_code == 0, result.output
    assert load_result(span)[0].attrs["method"] == "span"


def test_divergence_exits_3_with_the_step_and_keeps_the_records(tmp_path):
    out = tmp_path / "bad.nc"
    result = invoke(
        "train", "-L", 3, "-M", 8, "-D", 8, "-K", 4, "-a", "identity", "--lr", 1e5, "--out", out
    )
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "diverged" in lines[0] and "GD step" in lines[0]
    dataset, _ = load_result(out)
    step = int(dataset["diverged_at"].values.min())
    assert step >= 1 and f"GD step {step}" in lines[0]
    assert np.all(np.isnan(dataset["loss"].values[:, step + 1 :]))
    assert np.all(np.isfinite(dataset["loss"].values[:, :step]))


@pytest.mark.parametrize(
    "args, word",
    [
        (("train", "-L", 0, "-M", 8, "-D", 8), "depth"),
        (("train", "-L", 2, "-M", 8, "-D", 8, "--dtype", "float16"), "dtype"),
        (("train", "-L", 2, "-M", 8, "-D", 8, "--lr", "nan"), "lr"),
        (("train", "-L", 2, "-M", 8, "-D", 8, "-a", "bogus"), "activation"),
        (("train", "-L", 2, "-M", 7, "-D", 8, "--antithetic"), "hidden_width"),
        (("limit", "-D", 8, "--method", "magic"), "method"),
        (("limit", "-D", 8, "--lazy"), "--method span"),
        (("limit", "-D", 8, "-a", "tanh", "--method", "exact"), "activation"),
        (("limit", "-D", 0), "embedding_dim"),
        (("train", "-L", 2, "-M", 4, "-D", 8, "--block", "transformer"), "--block"),
        (("train", "-L", 2, "-M", 4, "-D", 8, "--key-dim", 2), "--key-dim"),
        (("train", "-L", 2, "-M", 4, "-D", 8, "--block", "attention", "--tokens", 0), "tokens"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, word):
    result = invoke(*args, "--out", tmp_path / "x.nc")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and word in lines[0]
    assert not (tmp_path / "x.nc").exists()


def test_limit_against_a_mismatched_run_is_refused(tmp_path):
    run = tmp_path / "run.nc"
    train = ("train", "-L", 2, "-M", 4, "-D", 8, "-K", 2, "-a", "identity", "--out", run)
    assert invoke(*train).exit_code == 0
    result = invoke("limit", "-D", 8, "-K", 3, "--against", run, "--out", tmp_path / "l.nc")
    assert result.exit_code == 2 and "--steps" in result.output
    other = invoke(
        "limit",
        "-D",
        8,
        "-K",
        2,
        "--embedding-seed",
        3,
        "--against",
        run,
        "--out",
        tmp_path / "m.nc",
    )
    assert other.exit_code == 2 and "embedding-seed" in other.output


@pytest.mark.parametrize(
    "args, flag",
    [
        (("--lr", 0.1), "--lr"),
        (("--alpha", 2.0), "--alpha"),
        (("-a", "linear:a=2"), "--activation"),
        (("--data-seed", 7), "--data-seed"),
    ],
)
def test_limit_against_a_run_trained_otherwise_is_refused(tmp_path, args, flag):
    """A run trained with another lr, alpha, activation or data would give meaningless errors."""
    run = tmp_path / "run.nc"
    train = ("train", "-L", 2, "-M", 4, "-D", 8, "-K", 2, "-a", "identity", "--out", run)
    assert invoke(*train).exit_code == 0
    result = invoke(
        "limit",
        "-D",
        8,
        "-K",
        2,
        "-a",
        "identity",
        *args,
        "--against",
        run,
        "--out",
        tmp_path / "l.nc",
    )
    assert result.exit_code == 2 and flag in result.output, result.output
    assert not (tmp_path / "l.nc").exists()


def test_limit_against_a_file_that_is_not_netcdf_is_one_line(tmp_path):
    bogus = tmp_path / "run.nc"
    bogus.write_text("not netCDF")
    result = invoke("limit", "-D", 8, "-K", 2, "--against", bogus, "--out", tmp_path / "l.nc")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "not a readable netCDF" in lines[0]
