"""Pages generated while the documentation site builds (mkdocs-gen-files, see mkdocs.yml).

- ``reference/``: one API page per public module of ``src/deeplimit`` (every ``.py`` file
  whose name does not start with ``_``, packages from their ``__init__``), rendered from the
  docstrings by mkdocstrings, and the navigation of that section (``reference/SUMMARY.md``).
  A module added to the package gets its page on the next build.
- ``figures/<paper>.md``: every figure of the paper's suite with its title, caption and claim
  checks, drawn by ``deeplimit reproduce <paper> --smoke`` (the smoke scale: seconds per
  figure; the verdicts at that scale are not meaningful). The figures are cached under
  ``build/docs-figures`` (``DEEPLIMIT_DOCS_FIGURES`` to change it) and drawn again when the
  library's version or git commit differs from the cached run's;
  ``DEEPLIMIT_DOCS_SCALE=fast`` draws them at the fast default instead.
- ``examples.md``: every ``examples/*.py`` script, its docstring and its code.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "deeplimit"
SUITES = {
    "hayou": "Hayou, *On the infinite-depth limit of finite-width neural networks*",
    "chizat": "Chizat, *The Hidden Width of Deep ResNets*",
}


def public_modules() -> list[tuple[str, ...]]:
    """Dotted module paths (as tuples) of every public module and package of deeplimit."""
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif parts[-1].startswith("_"):
            continue
        if any(part.startswith("_") for part in parts):
            continue
        modules.append(parts)
    return modules


def write_reference() -> None:
    nav = mkdocs_gen_files.Nav()
    for parts in public_modules():
        page = Path("reference", *parts).with_suffix(".md")
        if (PACKAGE.parent.joinpath(*parts) / "__init__.py").exists():
            page = Path("reference", *parts, "index.md")
        nav[parts] = page.relative_to("reference").as_posix()
        with mkdocs_gen_files.open(page, "w") as out:
            out.write(f"::: {'.'.join(parts)}\n")
        source = PACKAGE.parent.joinpath(*parts)
        source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
        mkdocs_gen_files.set_edit_path(page, source.relative_to(ROOT))
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as out:
        out.writelines(nav.build_literate_nav())


def _stamp(scale: str) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from deeplimit._version import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"deeplimit {__version__} commit {commit} scale {scale}"


_REPRODUCE = """
import sys
from deeplimit.reproduce import reproduce_suite
reproduce_suite(sys.argv[1], scale=sys.argv[2], out=sys.argv[3])
"""


def _draw(suite: str, cache: Path, scale: str) -> Path:
    """The folder holding ``suite``'s smoke-scale reproduction, drawn now if not cached."""
    folder = cache / scale
    stamp_file = folder / f"{suite}.stamp"
    stamp = _stamp(scale)
    report = folder / suite / "report.json"
    if report.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return folder
    shutil.rmtree(folder / suite, ignore_errors=True)
    print(f"docs: drawing the figures of {suite} at {scale} scale into {folder}", flush=True)
    # a fresh interpreter with the checkout's src first, as `deeplimit reproduce` would run
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    subprocess.run(
        [sys.executable, "-c", _REPRODUCE, suite, scale, str(folder)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    stamp_file.write_text(stamp)
    return folder


def write_figures() -> None:
    cache = Path(os.environ.get("DEEPLIMIT_DOCS_FIGURES", ROOT / "build" / "docs-figures"))
    scale = os.environ.get("DEEPLIMIT_DOCS_SCALE", "smoke")
    for suite, paper in SUITES.items():
        folder = _draw(suite, cache, scale)
        report = json.loads((folder / suite / "report.json").read_text())
        names = report["provenance"]["config"]["experiments"]
        rows = report["claims"]
        lines = [
            f"# Figures of {paper}",
            "",
            f"Every figure of `deeplimit reproduce {suite}`, drawn while this site was built, "
            f"at the **{scale}** scale"
            + (f" (`--{scale}`)" if scale != "fast" else "")
            + ": the pipeline and the look of each "
            "figure, not its statistics. "
            + (
                "At this scale the networks are few, so the verdicts below say nothing about "
                "the claims; run `deeplimit reproduce "
                f"{suite}` (fast default) or `--full` (paper scale) for meaningful ones. "
                if scale == "smoke"
                else ""
            )
            + f"What each figure shows and our choices of parameters: [{suite}.md](../{suite}.md).",
            "",
            f"*Drawn by {(folder / f'{suite}.stamp').read_text()}.*",
            "",
            "| figure | title | claims checked |",
            "|---|---|---|",
        ]
        summaries = {}
        for name in names:
            summaries[name] = json.loads((folder / name / f"{name}.json").read_text())
            ids = sorted({c["id"] for c in summaries[name]["claims"]})
            lines.append(f"| [{name}](#{name}) | {summaries[name]['title']} | {', '.join(ids)} |")
        passed = sum(row["verdict"] == "PASS" for row in rows)
        lines += ["", f"Claim checks at this scale: {passed} of {len(rows)} pass.", ""]
        for name in names:
            summary = summaries[name]
            image = f"{suite}/{name}.png"
            with mkdocs_gen_files.open(f"figures/{image}", "wb") as out:
                out.write((folder / name / f"{name}.png").read_bytes())
            lines += [
                f"## {summary['title']} {{#{name}}}",
                "",
                f"`deeplimit reproduce {name}`",
                "",
                f"![{name}: {summary['title']}]({image})",
                "",
                f"*{summary['caption']}*",
                "",
            ]
            for claim in summary["claims"]:
                verdict = "PASS" if claim["passed"] else "FAIL"
                lines.append(f"- **{verdict}** {claim['id']}: {claim['statement']}")
            lines.append("")
        with mkdocs_gen_files.open(f"figures/{suite}.md", "w") as out:
            out.write("\n".join(lines) + "\n")


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def write_examples() -> None:
    lines = [
        "# Examples",
        "",
        "Short scripts to copy, in `examples/` of the repository. Each runs as it is "
        "(`python examples/NAME.py`, from the virtual environment) and, with "
        "`DEEPLIMIT_EXAMPLE_SCALE=smoke`, in a few seconds: the test suite runs every one "
        "that way (`tests/test_examples.py`). Sweep files for `deeplimit sweep` are in "
        "`examples/sweeps/` ([guide](sweeps.md)).",
        "",
    ]
    for path in sorted((ROOT / "examples").glob("*.py")):
        doc = _docstring(path)
        title, _, rest = doc.partition("\n")
        lines += [f"## `{path.name}`: {title.strip()}", "", rest.strip(), ""]
        lines += ["```python", path.read_text().rstrip(), "```", ""]
    with mkdocs_gen_files.open("examples.md", "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ in {"<run_path>", "__main__"}:  # run by mkdocs-gen-files (runpy.run_path)
    write_reference()
    write_examples()
    write_figures()
