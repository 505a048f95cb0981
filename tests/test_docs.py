"""docs/layout.md names every module of the package and of envs/ exactly once, and nothing that is
not there; CONTRIBUTING's table points at files that exist; every `docs/` page the code, the
README and the docs cite exists; the README stays a short front page."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_rows(package: str) -> list[str]:
    layout = (ROOT / "docs" / "layout.md").read_text()
    table = layout[layout.index("|---|", layout.index(f"`{package}/`")) :]
    table = table[: table.index("\n\n")]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in table.splitlines()[1:]]


def _modules(package: str) -> set[str]:
    """Every module, as its path in the package (`phases/online.py`); `__init__.py`s aside."""
    folder = ROOT / package
    return {
        p.relative_to(folder).as_posix() for p in folder.rglob("*.py") if p.name != "__init__.py"
    }


def test_readme_layout_lists_every_module_once():
    for package in ("wsrl_mjx", "envs"):
        rows = _layout_rows(package)
        assert len(rows) == len(set(rows)), f"{package}: listed twice"
        listed = {r for r in rows if not r.endswith(".yaml")}
        assert listed == _modules(package), package


def test_contributing_points_at_files_that_exist():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    table = text[text.index("## Where things live") : text.index("Every module has")]
    paths = re.findall(r"`((?:wsrl_mjx|envs)/[^`{]*)`", table)
    assert paths and all((ROOT / p).exists() for p in paths), paths


def test_every_cited_docs_page_exists():
    cited = set()
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("wsrl_mjx/**/*.py")]:
        cited |= {
            (path, m) for m in re.findall(r"docs/[A-Za-z0-9_]+\.(?:md|png)", path.read_text())
        }
    cited |= {
        (p, "docs/" + m)
        for p in ROOT.glob("*.md")
        for m in re.findall(r"\]\(docs/([A-Za-z0-9_]+\.(?:md|png))", p.read_text())
    }
    missing = sorted(f"{p.relative_to(ROOT)}: {m}" for p, m in cited if not (ROOT / m).exists())
    assert cited and not missing, missing


def test_readme_is_a_short_front_page_that_leads_with_the_result():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10_000
    first_screen = readme[: readme.index("## Set-up")]
    assert "results/" in first_screen and ".png" in first_screen  # the headline and its figure
    assert "## Citation" in readme
