#!/usr/bin/env python3
"""Checks a report written by 'mobileclip report' against its runs' train.jsonl.

Usage: report_check.py [--evals=N] REPORT.html RUN_DIR...   (the runs in the report's order;
       N: at least N evaluation curves must be found and checked)

  - the page parses: Python's html.parser with every element closed in order
    (void elements aside), and every <svg> parses on its own as XML;
  - for each run, the loss, grad-norm and learning-rate curves against steps
    and against samples: every raw point, mapped back through the plot's axis
    transform (its data- attributes), is a logged (x, value) pair, in order,
    one per finite logged value (a step logged twice counts once, with its
    last line);
  - the smoothed loss equals TensorBoard's debiased EMA of the logged values,
    with the weight the page states;
  - the evaluations of results.jsonl (zero-shot top-1/top-5, retrieval R@k) are
    points at their seen samples with their values;
  - the header names each run's model and its command line.
Prints one line per failure and "report_check: N passed, N failed".
"""
import html.parser
import json
import math
import re
import sys
import xml.etree.ElementTree as ET

passed = 0
failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + msg)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Tree(html.parser.HTMLParser):
    """Element stack check and the SVG plots with their shapes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.plots = {}       # figure id -> {"attrs": svg attrs, "shapes": [(tag, attrs)]}
        self.figure = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self.figure = a.get("id")
        if tag == "svg" and self.figure and "chart" in (a.get("class") or ""):
            self.plots[self.figure] = {"attrs": a, "shapes": []}
        if self.figure in self.plots and tag in ("polyline", "circle", "polygon", "g"):
            self.plots[self.figure]["shapes"].append((tag, a))
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        if self.figure in self.plots and tag in ("polyline", "circle", "polygon"):
            self.plots[self.figure]["shapes"].append((tag, a))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append("</%s> at %s closes %s" % (tag, self.getpos(), self.stack[-1] if self.stack else "nothing"))
            return
        self.stack.pop()
        if tag == "figure":
            self.figure = None

    def handle_data(self, data):
        self.text.append(data)


def read_log(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and isinstance(d.get("step"), (int, float)):
            rows[d["step"]] = d          # the last line of a step counts
    return [rows[k] for k in sorted(rows)]


def finite(v):
    return isinstance(v, (int, float)) and math.isfinite(v)


def back(svg, px, py):
    f = lambda k: float(svg["data-" + k])
    x = f("x0") + (px - f("left")) / (f("right") - f("left")) * (f("x1") - f("x0"))
    u = (f("bottom") - py) / (f("bottom") - f("top"))
    if svg["data-ylog"] == "1":
        y = 10 ** (math.log10(f("y0")) + u * (math.log10(f("y1")) - math.log10(f("y0"))))
    else:
        y = f("y0") + u * (f("y1") - f("y0"))
    return x, y / f("yscale")


def curve(plot, cls, run, metric):
    pts = []
    for tag, a in plot["shapes"]:
        if a.get("class") != cls or a.get("data-run") != str(run) or a.get("data-metric") != metric:
            continue
        if tag == "circle":
            pts.append(back(plot["attrs"], float(a["cx"]), float(a["cy"])))
        elif tag == "polyline":
            for p in a["points"].split():
                px, py = p.split(",")
                pts.append(back(plot["attrs"], float(px), float(py)))
    return pts


def close(plot, got, want):
    svg = plot["attrs"]
    y0, y1 = float(svg["data-y0"]), float(svg["data-y1"])
    x0, x1 = float(svg["data-x0"]), float(svg["data-x1"])
    if abs(got[0] - want[0]) > abs(x1 - x0) * 1e-4:
        return False
    if svg["data-ylog"] == "1":
        return abs(math.log10(got[1]) - math.log10(want[1])) <= abs(math.log10(y1 / y0)) * 1e-4
    return abs(got[1] - want[1]) <= abs(y1 - y0) * 1e-4 + 1e-12


def main():
    args = sys.argv[1:]
    want_evals = 0
    if args and args[0].startswith("--evals="):   # at least this many evaluation curves
        want_evals = int(args.pop(0).split("=")[1])
    report, runs = args[0], args[1:]
    evals_checked = [0]
    text = open(report, encoding="utf-8").read()
    t = Tree()
    t.feed(text)
    t.close()
    check(not t.errors, "elements out of order: %s" % t.errors[:3])
    check(not t.stack or [s[0] for s in t.stack] == [], "elements left open: %s" % t.stack[:5])
    svgs = re.findall(r"<svg\b.*?</svg>", text, re.S)
    bad = 0
    for s in svgs:
        try:
            ET.fromstring(s)
        except ET.ParseError as e:
            bad += 1
            if bad <= 3:
                print("  svg not XML: %s: %s" % (e, s[:200]))
    check(svgs and bad == 0, "%d of %d <svg> elements are not well-formed XML" % (bad, len(svgs)))
    m = re.search(r"Smoothing: exponential moving average ([0-9.]+)", text)
    w = float(m.group(1)) if m else None
    page = "".join(t.text)
    for r, run in enumerate(runs):
        log = read_log(run + "/train.jsonl")
        check(log, "%s: no steps in train.jsonl" % run)
        params = json.load(open(run + "/params.json", encoding="utf-8"))
        check(params["model"] in page, "%s: the model %s is not in the header" % (run, params["model"]))
        check(params["command_line"] in page, "%s: the command line is not in the header" % run)
        for metric in ("loss", "grad_norm", "lr"):
            for xkey in ("step", "samples"):
                plot = t.plots.get("plot-%s-%s" % (metric, xkey))
                check(plot is not None, "no plot of %s against %s" % (metric, xkey))
                if plot is None:
                    continue
                check(plot["attrs"].get("data-xkey") == xkey, "plot-%s-%s: data-xkey" % (metric, xkey))
                want = [(d[xkey], d[metric]) for d in log if finite(d.get(metric)) and finite(d.get(xkey))]
                got = curve(plot, "raw", r, metric)
                check(len(got) == len(want), "run %d %s/%s: %d points plotted, %d logged" % (r, metric, xkey, len(got), len(want)))
                mism = [(g, wv) for g, wv in zip(got, want) if not close(plot, g, wv)]
                check(not mism, "run %d %s/%s: %d points off, first %s" % (r, metric, xkey, len(mism), mism[:1]))
                if metric == "loss" and w is not None and len(want) > 1:
                    last, k, sm = 0.0, 0, []
                    for _, v in want:
                        last = last * w + (1 - w) * v
                        k += 1
                        sm.append(last / (1 - w ** k))
                    got_s = curve(plot, "smooth", r, metric)
                    check(len(got_s) == len(sm), "run %d smoothed loss: %d points, want %d" % (r, len(got_s), len(sm)))
                    off = [i for i, (g, v) in enumerate(zip(got_s, sm)) if not close(plot, g, (want[i][0], v))]
                    check(not off, "run %d smoothed loss is not the EMA %g at points %s" % (r, w, off[:5]))
        # evaluations: placed by "samples" (what the run writes), value as a fraction
        try:
            results = [json.loads(l) for l in open(run + "/results.jsonl", encoding="utf-8") if l.strip()]
        except OSError:
            results = []
        for key in sorted({k for d in results for k in d}):
            if key.endswith(("-zeroshot-val-top1", "-zeroshot-val-top5")):
                pid = "plot-eval-zeroshot"
            elif key.startswith("image_to_text_R@"):
                pid = "plot-eval-i2t"
            elif key.startswith("text_to_image_R@"):
                pid = "plot-eval-t2i"
            else:
                continue
            plot = t.plots.get(pid)
            check(plot is not None, "run %d: no plot %s for %s" % (r, pid, key))
            if plot is None:
                continue
            want = [(d["samples"], d[key]) for d in results if finite(d.get(key)) and finite(d.get("samples"))]
            got = curve(plot, "raw", r, key)
            check(len(got) == len(want) and all(close(plot, g, wv) for g, wv in zip(got, want)),
                  "run %d %s: plotted %s, results.jsonl %s" % (r, key, got, want))
            evals_checked[0] += 1
    check(evals_checked[0] >= want_evals, "%d evaluation curves checked, want at least %d" % (evals_checked[0], want_evals))
    print("report_check: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
