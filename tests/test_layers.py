"""The pipeline reads in one direction: a stage imports only the stages before it, and only the UI imports gradio."""

import ast
from pathlib import Path

import tcap_viz

PACKAGE = Path(tcap_viz.__file__).parent
STAGES = ["data", "model", "attention", "detection", "storage", "review", "ui"]
# modules that string stages together sit between storage and review
GLUE = {"pipeline": "storage", "demo": "data", "atomic": "data", "cli": "ui"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _stage(path: Path) -> str | None:
    part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    return part if part in STAGES else GLUE.get(part)


def test_no_stage_imports_a_later_one_and_only_the_ui_imports_gradio():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        stage = _stage(path)
        for name in _imports(path):
            if name.split(".")[0] == "gradio" and stage != "ui":
                problems.append(f"{path.relative_to(PACKAGE)} imports gradio")
            if name.startswith("tcap_viz."):
                target = _stage(PACKAGE / (name.split(".")[1] + ("" if (PACKAGE / name.split(".")[1]).is_dir() else ".py")))
                if stage and target and STAGES.index(target) > STAGES.index(stage):
                    problems.append(f"{path.relative_to(PACKAGE)} ({stage}) imports {name} ({target})")
    assert problems == []
