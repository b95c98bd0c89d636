"""Hostile subject and body templates: how long each takes to be refused or stopped, and the memory it reaches.

    PYTHONPATH=.:shared .venv/bin/python bench/templates.py [--runs 5]

Each template is checked as saving it checks it (``Templates.check``: parsed, names checked, rendered with the sample
booking) ``--runs`` times after one unmeasured run, each time as text never parsed before; the table gives the median and the slowest wall-clock time, the
peak memory Python allocated during one run (tracemalloc), and the first line of why it was refused. For scale, the
last rows render the default templates and a typical custom pair for one booking. Exit 1 when a hostile template was
accepted, or its median time was over the budget (100 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

from calsync.rendering import TemplateError, Templates, sample

BUDGET_MS = 100.0

# Each of these would stall a function or fill a calendar item without the limits (README, Subject and body
# templates). tests/calsync/test_rendering.py checks that each is refused with memory bounded.
HOSTILE = {
    "a loop of a hundred million": "{% for i in (1..100000000) %}x{% endfor %}",
    "an endless loop (tablerow of a hundred million)": "{% tablerow i in (1..100000000) %}x{% endtablerow %}",
    "nested loops": "{% for a in (1..500) %}{% for b in (1..500) %}x{% endfor %}{% endfor %}",
    "many loops one after another": "{% for i in (1..500) %}{% endfor %}" * 100,
    "10 MB of output": "{% for i in (1..500) %}{{ 'x' | append: '" + "x" * 4000 + "' }}{% endfor %}",
    "10 MB captured": "{% capture c %}{% for i in (1..500) %}{{ '"
    + "y" * 4000
    + "' }}{% endfor %}{% endcapture %}",
    "assign/append doubling": (
        "{% assign s = 'x' %}{% for i in (1..28) %}{% assign s = s | append: s %}{% endfor %}{{ s.size }}"
    ),
    "join of ten million": "{{ (1..10000000) | join: ',' | size }}",
    "a number squared again and again": (
        "{% assign n = 99 %}{% for i in (1..60) %}{% assign n = n | times: n %}{% endfor %}{{ n }}"
    ),
    "deep nesting": "{% if true %}" * 200 + "x" + "{% endif %}" * 200,
    "include of a file": "{% include '/etc/passwd' %}",
}
TYPICAL = (
    "{{ service.name }} with {{ client.first_name }} {{ client.last_name }}",
    "<p>{{ booking.datetime | date: '%a %d %b %H:%M' }}, {{ company.address.address1 }}</p>"
    "{% for a in booking.answers %}<p>{{ a.name }}: {{ a.answer }}</p>{% endfor %}",
)


def _once(templates: Templates, *, render_only: bool = False) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        if render_only:
            templates.render(sample())
        else:
            templates.check()
    except TemplateError as exc:
        return (time.perf_counter() - started) * 1000, exc.detail.splitlines()[0]
    return (time.perf_counter() - started) * 1000, ""


def _peak(templates: Templates, *, render_only: bool = False) -> float:
    tracemalloc.start()
    try:
        _once(templates, render_only=render_only)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _anew(templates: Templates, run: int) -> Templates:
    """The same templates as text never seen before: a parsed template is kept per function, a save parses afresh."""
    mark = f"{{% comment %}}{run}{{% endcomment %}}"
    return Templates(templates.subject_source, templates.body_source + mark, templates.plain_text_body)


def measure(templates: Templates, runs: int, *, render_only: bool = False) -> tuple[float, float, float, str]:
    """(median ms, slowest ms, peak MB, why refused or "") of ``runs`` checks, each of text never parsed before (or
    renders, of one parsed template), after one unmeasured."""
    _once(templates, render_only=render_only)
    times, why = [], ""
    for run in range(runs):
        took, why = _once(templates if render_only else _anew(templates, run), render_only=render_only)
        times.append(took)
    return statistics.median(times), max(times), _peak(_anew(templates, runs), render_only=render_only), why


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    failed = []
    print("| template (as the body) | median ms | slowest ms | peak MB | outcome |")
    print("|---|---:|---:|---:|---|")
    for name, source in HOSTILE.items():
        median, slowest, peak, why = measure(Templates("x", source), runs)
        if not why:
            failed.append(f"{name}: accepted")
        elif median > BUDGET_MS:
            failed.append(f"{name}: {median:.1f} ms, over {BUDGET_MS:.0f} ms")
        print(f"| {name} | {median:.1f} | {slowest:.1f} | {peak:.2f} | refused: {why or 'ACCEPTED'} |")
    for name, templates in (
        ("default subject and body", Templates()),
        ("a typical custom pair", Templates(*TYPICAL)),
    ):
        median, slowest, peak, why = measure(templates, runs, render_only=True)
        print(f"| {name}, one booking | {median:.2f} | {slowest:.2f} | {peak:.2f} | {why or 'rendered'} |")
    for problem in failed:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
