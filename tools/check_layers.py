#!/usr/bin/env python3
"""Checks that the library's source tree keeps its architecture.

src/ is cut into folders, one per layer; each folder's README.md says what
the layer owns and, on a line "May use: a, b" (or "May use: nothing"), which
other layers it may use.  This program reads those lines and then:

  1. every quoted #include in src/ names a header by its folder
     ("kernels/gemm.h"; "mobileclip.h", the public header, is allowed
     everywhere), and only a header of the same layer or of a layer the
     includer may use;
  2. no circle among the source files: the module of x.c / x.h depends on
     the module of each header it includes, and that graph has no cycle;
  3. with --objects DIR (the build's object folder, DIR/<layer>/<name>.o):
     the same two rules over the symbols the objects define and use, which
     also sees calls made through the public header.

Prints one line per violation, naming the files, and exits 1 on any.
Usage: check_layers.py [--src DIR] [--objects DIR] [--nm NM]
"""
import argparse
import os
import re
import subprocess
import sys

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MAY_USE_RE = re.compile(r'^May use:\s*(.*)$', re.M)
PUBLIC = {"mobileclip.h"}


def read_layers(src):
    """{layer: set of layers it may use} from each folder's README.md."""
    layers, errors = {}, []
    for d in sorted(os.listdir(src)):
        path = os.path.join(src, d)
        if not os.path.isdir(path):
            continue
        readme = os.path.join(path, "README.md")
        if not os.path.isfile(readme):
            errors.append("src/%s: no README.md saying what the layer owns and may use" % d)
            continue
        m = MAY_USE_RE.search(open(readme, encoding="utf-8").read())
        if not m:
            errors.append("src/%s/README.md: no 'May use:' line" % d)
            continue
        words = [w.strip() for w in m.group(1).replace(".", "").split(",") if w.strip()]
        layers[d] = set() if words == ["nothing"] else set(words)
    for layer, uses in layers.items():
        for u in sorted(uses):
            if u not in layers:
                errors.append("src/%s/README.md: may use '%s', which is no layer" % (layer, u))
    return layers, errors


def find_cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def cycle_path(graph, comp):
    """One circle through the component, as a list of nodes."""
    comp_set = set(comp)
    start = comp[0]
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in comp_set and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp + [comp[0]]


def circles(graph, why, kind):
    """One message per circle of graph, each step explained by why[(a, b)]."""
    out = []
    for comp in find_cycles(graph):
        path = cycle_path(graph, comp)
        steps = "; ".join(why[(path[i], path[i + 1])] for i in range(len(path) - 1))
        out.append("%s circle %s: %s" % (kind, " -> ".join(path), steps))
    return out


def layer_allowed(layers, a, b):
    return a == b or b in layers.get(a, set())


def check_includes(src, layers):
    errors, graph, why = [], {}, {}
    for layer in sorted(layers):
        folder = os.path.join(src, layer)
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            rel = "%s/%s" % (layer, name)
            mod = rel.rsplit(".", 1)[0]
            graph.setdefault(mod, set())
            text = open(os.path.join(folder, name), encoding="utf-8", errors="replace").read()
            for inc in INCLUDE_RE.findall(text):
                if inc in PUBLIC:
                    continue
                parts = inc.split("/")
                if len(parts) != 2 or parts[0] not in layers:
                    errors.append("src/%s includes \"%s\": name a library header by its layer folder "
                                  "(\"layer/name.h\")" % (rel, inc))
                    continue
                if not os.path.isfile(os.path.join(src, inc)):
                    errors.append("src/%s includes \"%s\", which does not exist" % (rel, inc))
                    continue
                if not layer_allowed(layers, layer, parts[0]):
                    errors.append("src/%s includes %s: upward include (layer %s may use: %s)"
                                  % (rel, inc, layer, ", ".join(sorted(layers[layer])) or "nothing"))
                dep = inc.rsplit(".", 1)[0]
                if dep != mod:
                    graph[mod].add(dep)
                    why.setdefault((mod, dep), "src/%s includes %s" % (rel, inc))
    return errors + circles(graph, why, "include")


def check_objects(objdir, layers, nm):
    """The layer and circle rules over the symbols the objects define and use."""
    errors, defs, uses = [], {}, {}
    for layer in sorted(layers):
        folder = os.path.join(objdir, layer)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".o"):
                continue
            mod = "%s/%s" % (layer, name[:-2])
            path = os.path.join(folder, name)
            out = subprocess.run([nm, "-P", path], capture_output=True, text=True, check=True).stdout
            uses[mod] = set()
            for line in out.splitlines():
                f = line.split()
                if len(f) < 2:
                    continue
                sym, kind = f[0], f[1]
                if kind == "U":
                    uses[mod].add(sym)
                elif kind in "TDBRCVW":
                    defs.setdefault(sym, mod)
    if not uses:
        return ["%s: no object files under the layer folders" % objdir]
    graph, why = {m: set() for m in uses}, {}
    for mod in sorted(uses):
        for sym in sorted(uses[mod]):
            dep = defs.get(sym)
            if not dep or dep == mod:
                continue
            if not layer_allowed(layers, mod.split("/")[0], dep.split("/")[0]):
                errors.append("%s.o calls %s of %s.o: upward call (layer %s may use: %s)"
                              % (mod, sym, dep, mod.split("/")[0],
                                 ", ".join(sorted(layers[mod.split("/")[0]])) or "nothing"))
            graph[mod].add(dep)
            why.setdefault((mod, dep), "%s uses %s" % (mod, sym))
    return errors + circles(graph, why, "call")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    ap.add_argument("--objects", help="object folder (e.g. build/obj) for the symbol check")
    ap.add_argument("--nm", default=os.environ.get("NM", "nm"))
    args = ap.parse_args()
    layers, errors = read_layers(args.src)
    for cyc in find_cycles(layers):
        errors.append("layers use each other in a circle: %s" % " -> ".join(cycle_path(layers, cyc)))
    errors += check_includes(args.src, layers)
    if args.objects:
        errors += check_objects(args.objects, layers, args.nm)
    for e in errors:
        print(e)
    n_files = sum(len([f for f in os.listdir(os.path.join(args.src, l)) if f.endswith((".c", ".h"))])
                  for l in layers)
    print("check_layers: %d layers, %d files%s: %s" % (len(layers), n_files,
          ", symbols of %s" % args.objects if args.objects else "",
          "%d violations" % len(errors) if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
