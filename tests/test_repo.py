"""Repository invariants: CI runs the README's test command, and the engine stays torch-free."""

from __future__ import annotations

import re

from conftest import REPO


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = _bash_blocks(readme)
    test_cmds = [b for b in blocks if "pytest" in b]
    assert test_cmds, "README has no test command in a ```bash block"
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_cmds[0] in ci_lines, ".ci/run must run the README's test command verbatim"


def test_engine_sources_never_import_torch():
    offenders = []
    for path in (REPO / "bitnet").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(import torch|from torch)\b", line):
                offenders.append(f"{path.relative_to(REPO)}:{n}")
    assert not offenders, f"bitnet/ must not import torch: {offenders}"


def test_readme_digits_table_is_generated_from_the_bundled_model():
    """The README's digit-model table is what ``python -m evaluation.loso --readme`` makes
    from the bundled file's provenance: a new default.bnn without regenerating it fails."""
    from evaluation.loso import MARK_BEGIN, MARK_END, digits_table

    for doc in (REPO / "README.md", REPO / "docs" / "training.md"):
        text = doc.read_text()
        block = text[text.index(MARK_BEGIN) + len(MARK_BEGIN):text.index(MARK_END)].strip()
        assert block == digits_table().strip(), doc.name
