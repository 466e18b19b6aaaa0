"""The ledger owns the gs_ops tables: no module outside gs_assets/engine/ledger.py names them in SQL.

Every string literal of the project's code (docstrings aside: they describe, they do not query) is
searched for `gs_ops`; the only ones allowed elsewhere are the few user-facing texts below, which
name a table for a person to query.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ["gs_assets", "resources", "sensors", "schedules"]
LEDGER = Path("gs_assets/engine/ledger.py")

# (module, text the literal contains): messages and help for a person, not SQL the code runs.
ALLOWED = {
    (Path("gs_assets/demo/run_demo.py"), "job runs (gs_ops.job_runs):"),
    (Path("gs_assets/demo/run_demo.py"), "rejects (gs_ops.rejects): "),
    (Path("gs_assets/demo/run_demo.py"), '"SELECT * FROM gs_ops.rejects"   -> query the warehouse'),
    (Path("gs_assets/demo/run_demo.py"), "(DuckDB; schemas gs, gs_ops, raw_demo_s3, raw_sfdc, raw_hubspot, raw_billing_db)"),
    (Path("gs_assets/demo/run_demo.py"), "): synced streams (gs_ops.syncs)"),
    (Path("gs_assets/demo/run_demo.py"), "): synced datasets (gs_ops.syncs)"),
    (Path("gs_assets/connectors/s3_files/assets.py"), "(`gs_ops.loads.raw_table` names it)"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def ops_sql_outside_ledger() -> list[str]:
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel == LEDGER:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docs = _docstrings(tree)
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docs:
                    continue
                if re.search(r"\bgs_ops\b", node.value) and not any(
                        rel == p and text in node.value for p, text in ALLOWED):
                    found.append(f"{rel}:{node.lineno}: {node.value.strip()[:100]!r}")
    return found


def test_no_gs_ops_sql_outside_the_ledger():
    found = ops_sql_outside_ledger()
    assert not found, ("SQL over the gs_ops tables belongs in gs_assets/engine/ledger.py; found elsewhere:\n"
                       + "\n".join(found))


def test_the_allow_list_is_still_needed():
    """Each allowed text is still in a string of its module (an entry left behind would let SQL slip in)."""
    for path, text in ALLOWED:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.Constant) and isinstance(n.value, str) and text in n.value
                   for n in ast.walk(tree)), (path, text)
