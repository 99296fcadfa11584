#!/usr/bin/env python3
"""Checks the layering rules CI holds the workspace to:

- no two modules of strata-broker import each other, directly or around a
  circle (a module is a file under crates/broker/src, with its children:
  connection/attach.rs belongs to `connection`);
- no file of strata-broker is over 800 lines;
- the pure crates (codec, session, router, store, journal, auth) do not depend on
  tokio.

Exits 1 naming what broke the rule.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
src = root / "crates/broker/src"
MAX_LINES = 800
PURE = ["codec", "session", "router", "store", "journal", "auth"]

failures = []

# Names lib.rs re-exports, to the module they come from.
reexports = {}
for m, names in re.findall(r"^pub use ([a-z_]+)::\{?([^};]*)\}?;", (src / "lib.rs").read_text(), re.M):
    for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names):
        reexports[name] = m

# Module graph: top-level module -> modules it names through `crate::`.
modules = {}
for path in sorted(src.rglob("*.rs")):
    rel = path.relative_to(src)
    if rel.name == "lib.rs":
        continue
    module = rel.parts[0].removesuffix(".rs")
    text = path.read_text()
    lines = text.count("\n")
    if lines > MAX_LINES:
        failures.append(f"{path.relative_to(root)} has {lines} lines (at most {MAX_LINES}): split it along a seam")
    deps = modules.setdefault(module, set())
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
    for m in re.findall(r"\bcrate::([A-Za-z_][A-Za-z0-9_]*)", code):
        m = reexports.get(m, m)
        if m != module:
            deps.add(m)
    # `use crate::{a, b::c}` groups.
    for group in re.findall(r"\bcrate::\{([^}]*)\}", code):
        for m in re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group):
            if m != module:
                deps.add(m)

# Cycles, by depth-first search.
state = {}
stack = []


def visit(m):
    state[m] = "open"
    stack.append(m)
    for d in sorted(modules.get(m, ())):
        if d not in modules:
            continue
        if state.get(d) == "open":
            cycle = stack[stack.index(d):] + [d]
            failures.append("module cycle in strata-broker: " + " -> ".join(cycle))
        elif d not in state:
            visit(d)
    stack.pop()
    state[m] = "done"


for m in sorted(modules):
    if m not in state:
        visit(m)

for crate in PURE:
    manifest = (root / "crates" / crate / "Cargo.toml").read_text()
    deps = manifest.split("[dependencies]", 1)[-1].split("\n[", 1)[0]
    if re.search(r"^\s*tokio\b", deps, re.M):
        failures.append(f"crates/{crate} depends on tokio: time and I/O are parameters in the pure crates")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"layers: {len(modules)} strata-broker modules, no cycle, none over {MAX_LINES} lines; pure crates without tokio")
