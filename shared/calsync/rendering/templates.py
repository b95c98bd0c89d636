"""Compiling, checking and rendering the integration's templates.

A template is customer-written code run for every booking in a queue all integrations share, so what one may cost is
bounded (``LIMITS``, stated in the README) and every name it uses is checked when it is saved (``drops.DROPS``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from liquid import BoundTemplate, Environment, RenderContext, StrictUndefined
from liquid.exceptions import FilterArgumentError, LiquidError, LoopIterationLimitError

from calsync.domain import Integration, TemplateError
from calsync.rendering import drops
from calsync.rendering.drops import DROPS, QUESTION_REFERENCE, ListOf, Open

DEFAULT_SUBJECT = (
    "{% if calsync.kind == 'block' %}{{ calsync.block_subject }}"
    "{% else %}{{ service.name | default: booking.service_name | default: 'Appointment' }}"
    "{% if client.name != blank %}: {{ client.name }}{% endif %}"
    "{% if calsync.is_reservation %} (awaiting confirmation){% endif %}{% endif %}"
)
DEFAULT_BODY = """{% if calsync.kind == 'block' -%}
<p>Time blocked in JRNI ({{ company.name }}){% if booking.person_name != blank %} for {{ booking.person_name }}{% endif %}.</p>
{%- else -%}
<p><strong>{{ service.name | default: booking.service_name }}</strong>{% if calsync.is_reservation %} (awaiting confirmation){% endif %}</p>
<p>{{ booking.datetime | date: "%a %d %b %Y %H:%M" }} &ndash; {{ booking.end_datetime | date: "%H:%M" }}{% if resource.name != blank %}, {{ resource.name }}{% endif %}</p>
<p>Customer: {{ client.name | default: booking.client_name }}{% if client.email != blank %}, {{ client.email }}{% endif %}{% if client.mobile != blank %}, {{ client.mobile }}{% elsif client.phone != blank %}, {{ client.phone }}{% endif %}</p>
{% for answer in booking.answers %}{% if answer.answer != blank %}<p>{{ answer.name }}: {{ answer.answer }}</p>
{% endif %}{% endfor %}{% if booking.notes != blank %}<p>Notes: {{ booking.notes }}</p>
{% endif %}
{%- endif %}
<p>From JRNI ({{ company.name }}), booking {{ booking.id }}. Change it in JRNI, not here.</p>"""


@dataclass(frozen=True)
class Limits:
    """What one template may cost, whatever it says."""

    subject_source: int = 2_000  # characters of template text
    body_source: int = 16_000
    output: int = 64 * 1024  # characters one render may write (the body; the subject is then cut to one line)
    subject: int = 255  # characters of the subject written
    loop: int = 500  # iterations of one loop, nested loops multiplied
    iterations: int = 2_000  # loop iterations in one render, all loops together
    value: int = 16_384  # characters (or items) of any value a filter takes or gives
    number_bits: int = 128  # size of a whole number a filter takes or gives
    assigned: int = 256 * 1024  # bytes a render's assign and capture variables may hold
    nesting: int = 20  # blocks inside blocks


LIMITS: Final = Limits()
_REFUSED_TAGS = {
    "include": "calsync templates cannot include other templates: write the text in this one",
    "render": "calsync templates cannot render other templates: write the text in this one",
}


class _Budget(RenderContext):
    """A render context that also counts every loop iteration of the render, all loops together."""

    spent = 0

    def raise_for_loop_limit(self, length: int = 1) -> None:
        super().raise_for_loop_limit(length)
        outer = 1
        for loop in self.loops:
            outer *= loop.length
        self.spent += length * outer
        if self.spent > LIMITS.iterations:
            raise LoopIterationLimitError(
                f"the template loops more than {LIMITS.iterations} times in one booking", token=None
            )


class _Template(BoundTemplate):
    context_class = _Budget


def _size(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value.bit_length() * LIMITS.value // LIMITS.number_bits
    if isinstance(value, str | list | tuple | range | dict):
        return len(value)
    return 0


def _bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing values over ``LIMITS.value``, taken or given (a filter can double a string or join a range
    of ten million in one step, before any output or assign limit looks)."""

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[:3], *kwargs.values()):
            if _size(value) > LIMITS.value:
                raise LoopIterationLimitError(
                    f"filter {name!r} was given a value over {LIMITS.value} characters or items", token=None
                )
        result = func(*args, **kwargs)
        if (
            isinstance(result, int)
            and not isinstance(result, bool)
            and result.bit_length() > LIMITS.number_bits
        ):
            raise LoopIterationLimitError(
                f"filter {name!r} made a number over {LIMITS.number_bits} bits", token=None
            )
        if _size(result) > LIMITS.value:
            raise LoopIterationLimitError(
                f"filter {name!r} made a value over {LIMITS.value} characters or items", token=None
            )
        return result

    for flag in ("with_context", "with_environment"):
        if getattr(func, flag, False):
            setattr(bounded, flag, True)
    return bounded


class _Limited(Environment):
    template_class = _Template
    loop_iteration_limit = LIMITS.loop
    output_stream_limit = LIMITS.output
    local_namespace_limit = LIMITS.assigned
    context_depth_limit = LIMITS.nesting
    block_nesting_limit = LIMITS.nesting

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        self.filters["date"] = _zoned_date(self.filters["date"])
        self.filters = {name: _bounded(name, func) for name, func in self.filters.items()}


def _zoned_date(builtin: Callable[..., Any]) -> Callable[..., Any]:
    """Liquid's ``date`` filter, formatting a date-time in its own zone. The library's remembers the last dates it
    read by equality, and two date-times of one instant in two zones are equal: a booking at 10:00 in London would
    print as 09:00 after one at 09:00 UTC."""

    def date(value: Any, fmt: Any, *, environment: Environment) -> Any:
        if isinstance(value, datetime) and isinstance(fmt, str):
            try:
                return value.strftime(fmt)
            except ValueError as exc:
                raise FilterArgumentError(str(exc), token=None) from exc
        return builtin(value, fmt, environment=environment)

    date.with_environment = True  # type: ignore[attr-defined]
    return date


_HTML = _Limited(undefined=StrictUndefined, autoescape=True, strict_filters=True)
_TEXT = _Limited(undefined=StrictUndefined, autoescape=False, strict_filters=True)
_ENVIRONMENTS = {"html": _HTML, "text": _TEXT}


@dataclass(frozen=True)
class _Compiled:
    template: BoundTemplate
    names_private_note: bool


class _Refused(Exception):
    """What is wrong with a template's text, and where."""


@functools.lru_cache(maxsize=256)
def _compiled(kind: str, source: str) -> _Compiled:
    """``source`` parsed and its names checked, once per function environment (an integration's templates are the
    same for every booking); _Refused says what is wrong where (not cached)."""
    try:
        template = _ENVIRONMENTS[kind].from_string(source)
        analysis = template.analyze(include_partials=False)
    except LiquidError as exc:
        raise _Refused(_where(exc, kind, source)) from exc
    except RecursionError as exc:
        raise _Refused(f"the template nests too deeply (at most {LIMITS.nesting} levels)") from exc
    problems = [
        _caret(source, span.index, len(tag), why)
        for tag, why in _REFUSED_TAGS.items()
        for span in analysis.tags.get(tag, [])
    ]
    problems += [
        _caret(source, span.index, len(name), f"no filter named {name!r}")
        for name, spans in analysis.filters.items()
        if name not in _ENVIRONMENTS[kind].filters
        for span in spans
    ]
    private = False
    for variables in analysis.globals.values():
        for variable in variables:
            private = private or variable.segments[:2] == ["booking", "private_note"]
            why = unknown_name(variable.segments)
            if why:
                problems.append(_caret(source, variable.span.index, len(str(variable)), why))
    if problems:
        raise _Refused("\n".join(problems))
    return _Compiled(template, private)


def unknown_name(segments: Sequence[Any]) -> str | None:
    """Why a template may not use this name (its path, segment by segment), or None when it may."""
    root = segments[0]
    if root not in DROPS:
        return f"unknown name {root!r}{_suggest(str(root), DROPS)}: templates use {', '.join(DROPS)}"
    spec: Any = DROPS[root]
    path = str(root)
    for segment in segments[1:]:
        if isinstance(segment, list) or isinstance(spec, Open):
            return None  # a computed key, or the customer's own keys: known when rendered
        if isinstance(spec, ListOf):
            if isinstance(segment, int) or segment in ("first", "last"):
                spec, path = spec.item, f"{path}[{segment}]"
                continue
            return None if segment == "size" else f"{path} is a list: use it in a for loop, or .first, .size"
        if isinstance(spec, dict):
            if isinstance(segment, str) and segment in spec:
                spec, path = spec[segment], f"{path}.{segment}"
                continue
            if segment == "size":
                return None
            if spec is drops.BOOKING and isinstance(segment, str) and QUESTION_REFERENCE.match(segment):
                close = difflib.get_close_matches(
                    segment, [f for f in spec if "_" in f or len(f) > 4], 1, 0.85
                )
                if not close:  # a question's reference: its answer (a value), blank when not answered
                    spec, path = None, f"{path}.{segment}"
                    continue
                return (
                    f"unknown name '{path}.{segment}' (did you mean '{path}.{close[0]}'? A question's reference "
                    "this close to a field's name is taken for a typo)"
                )
            return f"unknown name '{path}.{segment}'{_suggest(str(segment), spec, path)}"
        # a plain value (text, a number, a date): only its size
        if segment == "size":
            return None
        return f"{path} is a value, it has no {segment!r}"
    return None


def _suggest(name: str, known: Mapping[str, Any], path: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), 1, 0.7)
    if not close:
        return ""
    return f" (did you mean '{path + '.' if path else ''}{close[0]}'?)"


def _caret(source: str, index: int, length: int, why: str) -> str:
    """``why`` with where: the line and column, the line, and a caret under the name (as the Liquid parser does)."""
    index = max(0, min(index, len(source)))
    start = source.rfind("\n", 0, index) + 1
    end = source.find("\n", index)
    line_text = source[start : end if end >= 0 else len(source)]
    line, column = source.count("\n", 0, index) + 1, index - start + 1
    width = max(1, min(length, len(line_text) - (index - start)))
    gutter = " " * len(str(line))
    return (
        f"{why}\n  -> {line}:{column}\n{gutter} |\n{line} | {line_text}\n"
        f"{gutter} | {' ' * (index - start)}{'^' * width}"
    )


_LIQUID_WHERE = re.compile(r"^(  -> '.*' )(\d+):(\d+)$", re.MULTILINE)


def _where(exc: LiquidError, kind: str, source: str) -> str:
    """The Liquid parser's message, its column counted from 1 as ours and editors' are; where the parser does not
    say where (an expression it could not finish, a block never closed), found here."""
    message = str(exc)
    if _LIQUID_WHERE.search(message):
        return _LIQUID_WHERE.sub(lambda m: f"{m[1]}{m[2]}:{int(m[3]) + 1}", message)
    unclosed = re.match(r"expected tag end(\w+)", message)
    if unclosed:
        opened = _unclosed(source, unclosed[1])
        if opened is not None:
            return _caret(
                source,
                opened.start(),
                len(opened[0]),
                f"{{% {unclosed[1]} %}} is never closed: add {{% end{unclosed[1]} %}}",
            )
    for markup in _MARKUP.finditer(source):
        if not _parses(kind, markup[0]):
            return _caret(source, markup.start(), len(markup[0]), message)
    return _caret(source, len(source), 1, f"{message} (at the end of the template)")


_MARKUP = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_TAG_NAME = re.compile(r"\{%-?\s*(\w+)")
# A tag parsed on its own needs what encloses or closes it.
_ALONE = {"else": ("{% if true %}", "{% endif %}"), "elsif": ("{% if true %}", "{% endif %}")}
_ALONE["when"] = ("{% case 1 %}", "{% endcase %}")


def _parses(kind: str, markup: str) -> bool:
    name = _TAG_NAME.match(markup)
    before, after = _ALONE.get(name[1], ("", "")) if name else ("", "")
    if name and name[1] in ("if", "unless", "for", "case", "capture", "tablerow", "comment", "raw"):
        after = f"{{% end{name[1]} %}}"
    if name and name[1].startswith("end"):
        return True  # a closing tag alone says nothing
    try:
        _ENVIRONMENTS[kind].from_string(before + markup + after)
    except LiquidError:
        return False
    return True


def _unclosed(source: str, block: str) -> re.Match[str] | None:
    """The last ``{% block %}`` that no ``{% endblock %}`` closes."""
    opened: list[re.Match[str]] = []
    for tag in re.finditer(r"\{%-?\s*(end)?" + re.escape(block) + r"\b[^%]*%\}", source):
        if tag[1]:
            if opened:
                opened.pop()
        else:
            opened.append(tag)
    return opened[-1] if opened else None


def _render(kind: str, which: str, source: str, context: Mapping[str, Any]) -> str:
    try:
        compiled = _compiled(kind, source)
    except _Refused as exc:
        raise TemplateError(which, str(exc)) from exc
    if not compiled.names_private_note:
        context = {**context, "booking": drops.without_private_note(context["booking"])}
    try:
        return compiled.template.render(**context)
    except LiquidError as exc:
        raise TemplateError(which, _where(exc, kind, source)) from exc
    except RecursionError as exc:
        raise TemplateError(which, "the template nests too deeply") from exc


@dataclass(frozen=True)
class Templates:
    """An integration's subject and body templates, compiled and checked against every field they may use."""

    subject_source: str = DEFAULT_SUBJECT
    body_source: str = DEFAULT_BODY
    plain_text_body: bool = False

    @property
    def fingerprint(self) -> str:
        """Identifies the pair of templates: an item rendered with other templates is brought to these."""
        canonical = json.dumps(
            [self.subject_source, self.body_source, self.plain_text_body], separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def _body_kind(self) -> str:
        return "text" if self.plain_text_body else "html"

    def check(self) -> None:
        """Raise TemplateError unless both templates are short enough, use only known names and tags, and render the
        sample booking (the first of ``problems``)."""
        for problem in self.problems():
            raise problem

    def problems(self) -> list[TemplateError]:
        """What is wrong with each template, the subject's first: too long, an unknown name or tag, a syntax error
        (each with line and column), or failing on the sample booking."""
        found = []
        for which, kind, source, limit in self._parts():
            if len(source) > limit:
                found.append(
                    TemplateError(which, f"the template is {len(source)} characters long; at most {limit}")
                )
                continue
            try:
                _render(kind, which, source, drops.sample())
            except TemplateError as exc:
                found.append(exc)
        return found

    def _parts(self) -> Iterator[tuple[str, str, str, int]]:
        yield "subject", "text", self.subject_source, LIMITS.subject_source
        yield "body", self._body_kind, self.body_source, LIMITS.body_source

    def render(self, context: Mapping[str, Any]) -> tuple[str, str]:
        """(subject, body) for one booking's context (``drops.context``); the subject is one line of plain text of
        at most ``LIMITS.subject`` characters. TemplateError when the booking's data makes a template fail."""
        subject = _render("text", "subject", self.subject_source, context)
        body = _render(self._body_kind, "body", self.body_source, context)
        return " ".join(subject.split())[: LIMITS.subject], body


def templates_of(integration: Integration) -> Templates:
    """The integration's templates, or the defaults for those it leaves empty."""
    return Templates(
        integration.subject_template or DEFAULT_SUBJECT,
        integration.body_template or DEFAULT_BODY,
        integration.options.plain_text_body,
    )
