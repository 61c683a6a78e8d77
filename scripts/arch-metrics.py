#!/usr/bin/env python3
"""Architecture figures of a checkout, for before/after comparisons (issue "one door per tenant").

Usage: scripts/arch-metrics.py [repo-dir]   (default: this checkout)

Prints: modules in import cycles, upward imports (by the layers in tests/layers.rs), store methods that
take no organization scope, hand-written organization checks outside storage, the largest source file,
the longest HTTP handler, and the places that name an HTTP status. Text analysis, not a compiler: the
figures are for comparing two trees with the same script.
"""

import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
src = root / "src"
files = sorted(p for p in src.rglob("*.rs"))


def strip_tests(text: str) -> str:
    """Source without its `#[cfg(test)] mod tests { ... }` block."""
    at = text.find("#[cfg(test)]")
    return text if at < 0 else text[:at]


def owner(path: Path) -> str:
    return path.relative_to(src).parts[0].removesuffix(".rs")


def references(text: str) -> set[str]:
    found = set()
    for m in re.finditer(r"crate::(\{[^;]*?\}|[a-z_]+)", text):
        group = m.group(1)
        if group.startswith("{"):
            depth, item, start = 0, "", True
            for c in group[1:]:
                if c == "{":
                    depth += 1
                elif c == "}":
                    if depth == 0:
                        break
                    depth -= 1
                elif c == "," and depth == 0:
                    start, item = True, ""
                    continue
                if start and (c.isalnum() or c == "_"):
                    item += c
                elif start and item:
                    found.add(item)
                    start = False
            if start and item:
                found.add(item)
        else:
            found.add(group)
    return {f for f in found if f not in ("self", "super")}


# Import graph between top-level modules, and cycles (strongly connected components of two or more).
graph: dict[str, set[str]] = {}
sources = {p: strip_tests(p.read_text()) for p in files}
for p, text in sources.items():
    mod = owner(p)
    graph.setdefault(mod, set())
    for r in references(text):
        if r != mod and (src / r).exists() or (src / f"{r}.rs").exists():
            if r != mod:
                graph[mod].add(r)

index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def connect(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
        if w not in index:
            connect(w)
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
            sccs.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in list(graph):
    if v not in index:
        connect(v)
in_cycles = sum(len(c) for c in sccs)

# Upward imports, by the layer table of tests/layers.rs.
layers_src = (root / "tests" / "layers.rs").read_text()
table = layers_src[layers_src.index("const LAYERS"): layers_src.index("];", layers_src.index("const LAYERS"))]
rows = re.findall(r'\(\s*"[^"]+",\s*&\[([^\]]*)\]', table)
rank = {}
for i, row in enumerate(rows):
    for name in re.findall(r'"([a-z_]+)"', row):
        rank[name] = i
upward = set()
for p, text in sources.items():
    mod = owner(p)
    if mod not in rank:
        continue
    for r in references(text):
        if r in rank and rank[r] < rank[mod]:
            upward.add(f"{p.relative_to(src)} -> {r}")

# Store methods without an organization scope.
storage = src / "storage"
unscoped, scoped = [], []
if (storage / "sql.rs").exists():
    trait = sources[storage / "mod.rs"]
    body = trait[trait.index("pub trait Store"):]
    body = body[: body.index("\n}\n")]
    for m in re.finditer(r"async fn ([a-z_]+)\(([^)]*)\)", body, re.S):
        (scoped if "org_id" in m.group(2) else unscoped).append(m.group(1))
else:
    for p in storage.glob("*.rs"):
        text = sources[p]
        for block in re.finditer(r"impl (OrgStore|SystemStore|Db)(<'_>)? \{(.*?)\n\}", text, re.S):
            names = re.findall(r"pub (?:async )?fn ([a-z_]+)", block.group(3))
            (scoped if block.group(1) == "OrgStore" else unscoped).extend(
                n for n in names if n != "org_id"
            )

checks = []
for p, text in sources.items():
    if p.is_relative_to(storage):
        continue
    for n, line in enumerate(text.splitlines(), 1):
        if re.search(r"org_id [!=]= |== \*?org(_id|\.id)\b|!= \*?org(_id|\.id)\b", line):
            checks.append(f"{p.relative_to(src)}:{n}")

largest = max(files, key=lambda p: len(p.read_text().splitlines()))


def functions(text: str):
    """(name, lines) of each `fn` with a body, by brace depth."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"\s*(pub(\([a-z]+\))? )?(async )?fn ([a-z_0-9]+)", lines[i])
        if m:
            depth, started, j = 0, False, i
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                started = started or "{" in lines[j]
                if started and depth <= 0:
                    break
                if not started and lines[j].rstrip().endswith(";"):
                    break
                j += 1
            if started:
                yield m.group(4), j - i + 1
            i = j + 1
        else:
            i += 1


http = src / "http"
handlers = []
for p in http.rglob("*.rs"):
    if "views" in p.parts:
        continue
    text = sources[p]
    for name, n in functions(text):
        if re.search(rf"pub(\(crate\))? async fn {name}\b", text):
            handlers.append((n, f"{p.relative_to(src)}::{name}"))
handlers.sort(reverse=True)

statuses = sum(len(re.findall(r"StatusCode::[A-Z_]+", t)) for t in sources.values())

print(f"modules in import cycles: {in_cycles} ({'; '.join(' '.join(c) for c in sccs) or 'none'})")
print(f"upward imports: {len(upward)} {sorted(upward)}")
print(f"store methods without an organization scope: {len(unscoped)} of {len(unscoped) + len(scoped)}")
print(f"hand-written organization checks outside storage: {len(checks)} {checks}")
print(f"largest file: {largest.relative_to(root)} ({len(largest.read_text().splitlines())} lines)")
print(f"longest HTTP handler: {handlers[0][1]} ({handlers[0][0]} lines); over 40 lines: {sum(1 for n, _ in handlers if n > 40)} {[h for n, h in handlers if n > 40]}")
print(f"places naming an HTTP status (StatusCode::*, non-test code): {statuses}")
