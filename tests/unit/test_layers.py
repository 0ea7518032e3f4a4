"""The architecture, enforced: no import cycles among graph/ and streams/ modules, the pure core
imports no runtime library, every layer imports only the layers below it, and the product never
imports the developer tooling. Every import counts — at module level, inside a function, or under
``TYPE_CHECKING`` — because each is a dependency someone has to read past."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]

# Highest first: a module may import its own layer and any layer after it, never one before it.
LAYERS = [
    ("streams.cli",),
    ("streams.dev",),
    ("streams.worker", "streams.replay"),
    ("streams.runtime",),
    ("streams.sinks",),
    ("streams.contract", "streams.settings", "streams.kafka_security"),
    ("graph",),
]
RUNTIME_LIBRARIES = {"faust", "kafka", "aiokafka", "confluent_kafka", "duckdb", "prometheus_client", "mode",
                     "pyarrow", "streams"}


def modules() -> dict[str, Path]:
    found = {}
    for top in ("graph", "streams"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "target" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
        for stub in (ROOT / top).rglob("*.pyi"):  # compiled modules (the kernel): imported, importing nothing
            found.setdefault(".".join(stub.relative_to(ROOT).with_suffix("").parts), stub)
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The modules ``name`` imports (``from a import b`` is the module ``a.b`` when that exists)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def graph_of_imports() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    for name, path in known.items():
        g.add_node(name)
        if path.suffix == ".pyi":
            continue
        for target in imports(path, name, known):
            if target in known and target != name:
                g.add_edge(name, target)
            elif target.split(".")[0] not in ("graph", "streams"):
                g.nodes[name].setdefault("external", set()).add(target.split(".")[0])
    return g


def layer(module: str) -> int:
    for rank, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return rank
    return -1


def test_the_tree_is_read():
    g = graph_of_imports()
    assert {"graph.engine", "streams.runtime.pipeline", "streams.worker.app", "streams.sinks.audit.writer"} <= set(g)
    assert g.has_edge("streams.runtime.pipeline", "graph.engine")


def test_no_import_cycles():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(graph_of_imports()))
    assert cycles == [], f"import cycles: {cycles}"


def test_the_pure_core_imports_no_runtime_library():
    g = graph_of_imports()
    dirty = {n: sorted(g.nodes[n].get("external", set()) & RUNTIME_LIBRARIES) for n in g if n.startswith("graph")}
    dirty |= {n: sorted(t for t in g.successors(n) if t.startswith("streams")) for n in g if n.startswith("graph")}
    assert {n: libs for n, libs in dirty.items() if libs} == {}


def test_every_module_has_a_layer_and_imports_only_downwards():
    g = graph_of_imports()
    unplaced = sorted(n for n in g if layer(n) < 0 and n not in ("streams", "graph"))
    assert unplaced == [], f"modules outside every layer: {unplaced}"
    upward = sorted((a, b) for a, b in g.edges if layer(a) >= 0 and layer(b) >= 0 and layer(b) < layer(a))
    assert upward == [], f"imports of a higher layer: {upward}"


def test_the_product_never_imports_the_developer_tooling():
    g = graph_of_imports()
    product = [n for n in g if layer(n) > layer("streams.dev")]
    leaks = sorted((n, t) for n in product for t in nx.descendants(g, n) if t.startswith("streams.dev"))
    assert leaks == []


def test_streams_keeps_few_modules_at_its_top_level():
    top = sorted(p.name for p in (ROOT / "streams").glob("*.py"))
    assert len(top) <= 8, top


KERNEL = ROOT / "graph" / "kernel" / "src"


def kernel_graph() -> nx.DiGraph:
    """The kernel's modules and which uses which: every ``crate::a::b`` path names the longest module
    prefix it has (``use`` lines and paths written out in code alike)."""
    mods = {}
    for path in KERNEL.rglob("*.rs"):
        parts = list(path.relative_to(KERNEL).with_suffix("").parts)
        if parts[-1] in ("mod", "lib"):
            parts.pop()
        mods["::".join(parts)] = path
    g = nx.DiGraph()
    for name, path in mods.items():
        g.add_node(name)
        text = path.read_text()
        for match in re.finditer(r"crate((?:::\w+)+)", text):
            segments = match.group(1).strip(":").split("::")
            for n in range(len(segments), 0, -1):
                target = "::".join(segments[:n])
                if target in mods:
                    if target != name:
                        g.add_edge(name, target)
                    break
    return g


def test_the_kernel_has_no_module_cycles_and_lib_is_the_binding_only():
    g = kernel_graph()
    assert {"binding::graph", "stage_a::window", "stage_b::graph", "store::intern"} <= set(g)
    assert g.has_edge("stage_b::graph", "stage_a::changes")
    cycles = sorted(sorted(c) for c in nx.simple_cycles(g))
    assert cycles == [], f"kernel module cycles: {cycles}"
    # one direction of use: binding -> state -> stage_b -> stage_a -> store
    order = ["binding", "state", "stage_b", "stage_a", "store"]
    upward = sorted((a, b) for a, b in g.edges if a and b and order.index(b.split("::")[0]) < order.index(a.split("::")[0]))
    assert upward == [], f"kernel modules using a layer above them: {upward}"
    lib = (KERNEL / "lib.rs").read_text()
    assert "#[pymethods]" not in lib and "impl " not in lib and len(lib.splitlines()) < 60


def test_every_runtime_dependency_is_imported_by_the_product():
    import tomllib

    imports_of = {"faust-streaming": "faust", "kafka-python": "kafka", "prometheus-client": "prometheus_client"}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=~ ;\[]", d, maxsplit=1)[0] for d in declared]
    g = graph_of_imports()
    used = set().union(*(g.nodes[n].get("external", set()) for n in g))
    unused = [n for n in names if imports_of.get(n, n.replace("-", "_")) not in used]
    assert unused == [], f"runtime dependencies the product never imports: {unused}"
