"""The command line: result files with provenance, one-line errors, help with examples."""

import json

import pytest
from typer.testing import CliRunner

from deeplimit.cli import app
from deeplimit.results import load_result

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and "deeplimit" in result.output
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("sample", "law", "reproduce", "train", "limit", "sweep", "results", "plot"):
        assert command in result.output


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("sample",),
        ("sample", "resnet"),
        ("sample", "sde"),
        ("law",),
        ("reproduce",),
        ("train",),
        ("limit",),
        ("sweep",),
        ("results",),
        ("plot",),
    ],
)
def test_every_command_help_shows_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "deeplimit " in result.output


def test_sample_resnet_writes_a_result_with_provenance(tmp_path):
    out = tmp_path / "r.nc"
    result = invoke(
        "sample",
        "resnet",
        "--width",
        "3",
        "--depth",
        "20",
        "--activation",
        "leaky:alpha=1,beta=0.5",
        "--samples",
        "500",
        "--x",
        "1,0.5",
        "--x",
        "0,1",
        "--record",
        "0,10,20",
        "--seed",
        "7",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    dataset, provenance = load_result(out)
    assert dataset["Y"].dims == ("sample", "layer", "input", "coordinate")
    assert dataset["Y"].shape == (500, 3, 2, 3)
    assert list(dataset.layer.values) == [0, 10, 20]
    assert provenance["seed"] == 7 and provenance["version"]
    assert provenance["config"]["activation"] == "leaky:alpha=1,beta=0.5"
    assert provenance["config"]["x"] == [[1.0, 0.5], [0.0, 1.0]]
    assert provenance["device"].startswith("cpu")


def test_sample_sde_records_times(tmp_path):
    out = tmp_path / "s.nc"
    result = invoke(
        "sample",
        "sde",
        "--width",
        "1",
        "--activation",
        "linear",
        "--steps",
        "100",
        "--samples",
        "200",
        "--y0",
        "1",
        "--record",
        "0.5,1",
        "--out",
        str(out),
        "-q",
    )
    assert result.exit_code == 0, result.output
    dataset, provenance = load_result(out)
    assert dataset["Y"].dims == ("sample", "time", "coordinate")
    assert list(dataset.time.values) == [0.5, 1.0]
    assert provenance["config"]["steps"] == 100


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--width", "0", "--depth", "5", "--y0", "1"),
            "error: --width must be an integer >= 1, got 0",
        ),
        (("--width", "2", "--depth", "5", "--y0", "1,2,3"), "error: --y0 must have shape"),
        (("--width", "2", "--depth", "5"), "error: give exactly one of y0"),
        (
            ("--width", "2", "--depth", "5", "--y0", "1,a"),
            "error: --y0 must be comma-separated numbers",
        ),
        (
            ("--width", "2", "--depth", "5", "--y0", "1,2", "--activation", "leaky:gamma=2"),
            "unknown parameter 'gamma'",
        ),
        (("--width", "2", "--depth", "5", "--y0", "1,2", "--device", "cuda:7"), "error: --device="),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(tmp_path, args, message):
    result = invoke("sample", "resnet", *args, "--out", str(tmp_path / "x.nc"), "-q")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "x.nc").exists()


def test_blowup_is_one_line_with_exit_code_3(tmp_path):
    result = invoke(
        "sample",
        "resnet",
        "--width",
        "2",
        "--depth",
        "5",
        "--y0",
        "1,1",
        "--activation",
        "linear:a=1e200",
        "--out",
        str(tmp_path / "x.nc"),
        "-q",
        "--samples",
        "50",
    )
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "50 of 50 sample paths became non-finite" in lines[0]


def test_law_prints_quantiles_and_collapse():
    result = invoke("law", "relu-width1", "--x", "1", "--depth", "5", "--depth", "10")
    assert result.exit_code == 0, result.output
    assert "quantile" in result.output and "0.0618" in result.output and "0.0078" in result.output
    result = invoke("law", "ou", "--y0", "0.5", "--quantiles", "0.5")
    assert result.exit_code == 0 and "0.1747" in result.output and "infinite" in result.output
    result = invoke("law", "gbm", "--alpha", "1")
    assert result.exit_code == 2 and "--alpha does not apply" in result.output
    result = invoke("law", "nope")
    assert result.exit_code == 2 and "law must be one of" in result.output


def test_reproduce_fig1_small(tmp_path):
    result = invoke(
        "reproduce",
        "hayou-fig1",
        "--out",
        str(tmp_path),
        "--set",
        "samples=4000",
        "--set",
        "depths=[5, 500]",
        "-q",
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "hayou-fig1"
    for suffix in ("png", "pdf", "nc", "json"):
        assert (folder / f"hayou-fig1.{suffix}").stat().st_size > 0
    summary = json.loads((folder / "hayou-fig1.json").read_text())
    assert summary["spec"]["samples"] == 4000 and summary["provenance"]["seed"] == 0
    assert {c["id"] for c in summary["claims"]} >= {"C5", "C6", "fig1-small-depth"}
    assert "PASS C5" in result.output


def test_reproduce_rejects_unknown_names_and_fields(tmp_path):
    result = invoke("reproduce", "hayou-fig99", "--out", str(tmp_path))
    assert result.exit_code == 2 and "experiment must be one of" in result.output
    result = invoke("reproduce", "hayou-fig1", "--out", str(tmp_path), "--set", "sample=10")
    assert result.exit_code == 2 and "sample" in result.output
    result = invoke("reproduce", "hayou-fig1", "--out", str(tmp_path), "--set", "samples=5")
    assert result.exit_code == 2 and "samples must be an integer >= 100" in result.output


def test_an_output_path_that_is_a_folder_is_one_line(tmp_path):
    """OSErrors (a folder given as --out, a file where a folder is needed) are the user's input:
    one line naming the path, exit 2, no traceback."""
    result = invoke(
        "sample",
        "resnet",
        "--width",
        2,
        "--depth",
        3,
        "--activation",
        "relu",
        "--samples",
        10,
        "--y0",
        "1,1",
        "--out",
        tmp_path,
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0] == f"error: cannot use {str(tmp_path)!r}: Is a directory"


def test_law_with_a_bad_depth_prints_only_the_error():
    result = invoke("law", "relu-width1", "--x", "1", "--depth", "5", "--depth", "0")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == ["error: --depth must be integers >= 1, got 0"]


def test_smoke_reproduction_says_its_verdicts_mean_nothing(tmp_path):
    result = invoke("reproduce", "hayou-fig3", "--smoke", "--out", str(tmp_path), "-q")
    assert result.exit_code == 0, result.output
    assert "smoke scale" in result.output and "verdicts mean nothing" in result.output


def test_plain_progress_prints_every_ten_percent_and_every_minute_of_a_slow_stretch(
    monkeypatch, capsys
):
    """In a log (no terminal) a long study says something at each 10 % and, between them,
    once a minute with the share done and an estimate of the time left."""
    from deeplimit.cli import common

    clock = [0.0]
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])
    callback = common.plain_progress("study")
    for now, done in [(1, 5), (30, 10), (50, 12), (100, 15), (120, 16), (200, 20), (230, 21)]:
        clock[0] = float(now)
        callback(done, 100)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "study: 10% (30.0 s)",
        "study: 15.0% (100.0 s, about 9 min left)",  # 70 s after the last line
        "study: 20% (200.0 s)",
    ]
    clock[0] = 300.0
    callback(21, 100)
    assert capsys.readouterr().out == "study: 21.0% (300.0 s, about 19 min left)\n"
    clock[0] = 400.0
    callback(21, 100)  # another minute passed, but nothing more was done: no line
    assert capsys.readouterr().out == ""
