"""No import circles: walk the project's modules (mmbench, the workloads, the
built-in designs; Python and Cython, imports at any depth) and fail on any
module that reaches itself again through what it imports.

Two graphs are checked.  The runtime one: Python imports, plus the cimports
that make Cython import the module when it loads (of a cdef class or a
non-inline cdef function: types, enum constants and inline functions are
compiled in).  The compile-time one: every cimport between .pxd/.pyx files.
Imports by name (importlib: the CLI's commands, the backends' entry points)
are registration, not imports, and are not followed."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# where each top-level package lives in the source tree (workloads is installed
# as mmbench.workloads; the tree's name is the one its files use)
PACKAGES = {"mmbench": ROOT / "mmbench", "workloads": ROOT / "workloads",
            **{p.name: p for p in sorted((ROOT / "backends").glob("mmbench_*")) if p.is_dir()}}

_CIMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+c?import\s+(.+)|c?import\s+([\w., ]+))")


def _module_name(path: Path) -> str:
    for top, base in PACKAGES.items():
        if base in path.parents:
            parts = [top, *path.relative_to(base).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise AssertionError(path)


def _modules() -> dict[str, list[Path]]:
    mods: dict[str, list[Path]] = {}
    for base in PACKAGES.values():
        for path in sorted(base.rglob("*")):
            if path.suffix in (".py", ".pyx", ".pxd") and ".venv" not in path.parts:
                mods.setdefault(_module_name(path), []).append(path)
    return mods


def _resolve(mod: str, is_pkg: bool, level: int, name: str) -> str:
    if not level:
        return re.sub(r"^mmbench\.workloads\b", "workloads", name)
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports_py(mod: str, path: Path) -> set[str]:
    is_pkg = path.stem == "__init__"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):   # every depth, functions too
        if isinstance(node, ast.Import):
            out.update(_resolve(mod, is_pkg, 0, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, is_pkg, node.level, node.module or "")
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)    # `from pkg import module`
    return out


_RUNTIME_DECL = re.compile(r"^\s*cp?def\s+(?!inline\b|struct\b|enum\b|extern\b|union\b|packed\b)"
                           r"(?:class\s+(\w+)|[\w \t*\[\],]*?\b(\w+)\s*\()")


def _runtime_names(pxds: list[Path]) -> set[str]:
    """The names a .pxd declares that, cimported, import its module at load time."""
    out = set()
    for pxd in pxds:
        for line in pxd.read_text().splitlines():
            m = _RUNTIME_DECL.match(line)
            if m:
                out.add(m.group(1) or m.group(2))
    return out


def _imports_cython(mod: str, path: Path, pxds: dict[str, list[Path]]) -> tuple[set[str], set[str]]:
    """(runtime imports, cimports) of a .pyx or .pxd file."""
    is_pkg = path.stem == "__init__"
    runtime, compiled = set(), set()
    for line in path.read_text().splitlines():
        m = _CIMPORT.match(line)
        if m is None:
            continue
        is_c = re.match(r"^\s*(from\s+\S+\s+)?cimport\b", line) is not None
        if m.group(1) is not None:
            src = m.group(1)
            level = len(src) - len(src.lstrip("."))
            target = _resolve(mod, is_pkg, level, src.lstrip("."))
            names = [n.strip().split()[0] for n in m.group(2).strip("()\\ ").split(",")
                     if n.strip() and n.strip()[0].isalpha()]
            if not is_c:
                runtime |= {target} | {f"{target}.{n}" for n in names}
                continue
            compiled |= {target} | {f"{target}.{n}" for n in names}
            if path.suffix == ".pyx" and set(names) & _runtime_names(pxds.get(target, [])):
                runtime.add(target)
        else:
            targets = {_resolve(mod, is_pkg, 0, n.strip().split()[0]) for n in m.group(3).split(",")
                       if n.strip()}
            (compiled if is_c else runtime).update(targets)
            if is_c and path.suffix == ".pyx":
                runtime.update(targets)
    return runtime, compiled


def import_graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(runtime graph, compile-time graph): module -> the project modules it imports."""
    mods = _modules()
    pxds = {m: [p for p in paths if p.suffix == ".pxd"] for m, paths in mods.items()}
    runtime, compiled = {}, {}
    for mod, paths in mods.items():
        rt, ct = set(), set()
        for path in paths:
            if path.suffix == ".py":
                rt |= _imports_py(mod, path)
            else:
                r, c = _imports_cython(mod, path, pxds)
                rt |= r
                ct |= c
        # only other modules of the project; a submodule's relative import of its
        # own package's __init__ is not an import back
        keep = lambda deps: {d for d in deps if d in mods and d != mod and not mod.startswith(d + ".")}
        runtime[mod], compiled[mod] = keep(rt), keep(ct)
    return runtime, compiled


def import_graph() -> dict[str, set[str]]:
    return import_graphs()[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_the_project():
    graph = import_graph()
    # the modules named in the rule are walked, and their known edges are seen
    assert {"mmbench.report", "mmbench.report_page", "mmbench.report_plots", "workloads._common",
            "workloads.fault_latency", "mmbench_freebsd.core", "mmbench_uvm.core"} <= set(graph)
    assert "mmbench.report_tables" in graph["mmbench.report_page"]
    assert "workloads._common" in graph["workloads.fault_latency"]
    runtime, compiled = import_graphs()
    assert "mmbench.blocks.pagetable" in compiled["mmbench.blocks.pmap"]
    assert "mmbench.core" in runtime["mmbench_freebsd.core"]      # it subclasses core.Machine


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_module_that_imports_it_back():
    runtime, compiled = import_graphs()
    for what, graph in (("import", runtime), ("cimport", compiled)):
        found = cycles(graph)
        assert found == [], f"{what} circles:\n" + "\n".join(" -> ".join(c) for c in found)
