"""The messages of each segment: subjects, text and HTML templates (Jinja2).

Built-in segments ship a subject and both templates (``templates/<segment>.txt.j2`` and
``.html.j2``); the spec overrides any of them per segment, by path. Templates render in a
sandbox with strict undefined variables, HTML with autoescaping. Every template sees:

``shop_name``, ``email``, ``segment``, ``user`` (the email plus ``notify.context_fields``),
``merged_into`` (merged duplicates), and, when the user has a token, ``token``, ``reset_link``
(``notify.reset_url`` with the token) and ``expires_at``; without one these three are None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from authmigrate.errors import SpecError
from authmigrate.spec import NotifySpec, SegmentSpec

BUILTIN_SEGMENTS = ("kept", "wrapped", "reset", "merged")
"""Segments with shipped templates. All but ``kept`` (nothing changes for the customer) are
enabled unless the spec says ``enabled = false``; ``kept`` is sent only when the spec has a
``[notify.segments.kept]`` table."""

DEFAULT_SUBJECTS = {
    "kept": "Your {{ shop_name }} account has moved",
    "wrapped": "Your {{ shop_name }} account has moved and is better protected",
    "reset": "Please choose a new password for {{ shop_name }}",
    "merged": "Your {{ shop_name }} accounts have been combined",
}

TOKEN_VARIABLES = frozenset({"token", "reset_link"})
"""Template variables that carry the token: a segment using none of them stores no token."""

_DEFAULT_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Rendered:
    """One rendered message (the text may carry a token: never log it)."""

    subject: str
    text: str
    html: str | None

    def __repr__(self) -> str:
        return f"Rendered(subject={self.subject!r}, text=<{len(self.text)} chars>)"


@dataclass(frozen=True)
class _Segment:
    subject: jinja2.Template
    text: jinja2.Template
    html: jinja2.Template | None
    needs_token: bool


class Templates:
    """The compiled templates of every enabled segment.

    Args:
        notify: the ``[notify]`` section.
        base_dir: folder that relative template paths are read from (the spec's folder;
            default: the current directory).

    Raises:
        SpecError: a template file cannot be read or does not compile; names the key path.
    """

    def __init__(self, notify: NotifySpec, *, base_dir: Path | None = None) -> None:
        self.notify = notify
        self.base_dir = base_dir or Path.cwd()
        common: dict[str, Any] = {
            "undefined": jinja2.StrictUndefined,
            "keep_trailing_newline": True,
            "trim_blocks": True,
            "lstrip_blocks": True,
        }
        self._text_env = SandboxedEnvironment(autoescape=False, **common)
        self._html_env = SandboxedEnvironment(autoescape=True, **common)
        self._segments: dict[str, _Segment] = {}
        names = dict.fromkeys([*BUILTIN_SEGMENTS, *notify.segments])
        for name in names:
            # "kept" means nothing changes for the customer: no message unless the spec asks
            seg = notify.segments.get(name, SegmentSpec(enabled=name != "kept"))
            if seg.enabled:
                self._segments[name] = self._compile(name, seg)

    @property
    def enabled(self) -> frozenset[str]:
        """Names of the segments that get a message."""
        return frozenset(self._segments)

    def needs_token(self, segment: str) -> bool:
        """True when the segment's templates use ``token`` or ``reset_link``."""
        compiled = self._segments.get(segment)
        return compiled is not None and compiled.needs_token

    def render(self, segment: str, context: dict[str, Any]) -> Rendered:
        """Render the message of ``segment`` for one user.

        Raises:
            KeyError: the segment is not enabled.
            jinja2.TemplateError: a template uses a variable the context lacks.
        """
        compiled = self._segments[segment]
        subject = " ".join(compiled.subject.render(context).split())
        text = compiled.text.render(context)
        html = compiled.html.render(context) if compiled.html is not None else None
        return Rendered(subject, text, html)

    def context(
        self,
        *,
        segment: str,
        user: dict[str, Any],
        token: str | None,
        expires_at: str | None = None,
        merged_into: str | None = None,
    ) -> dict[str, Any]:
        """The variables every template sees (see the module docstring)."""
        link = None
        if token is not None:
            link = self.notify.reset_url.replace("{token}", quote(token, safe=""))
        return {
            "shop_name": self.notify.shop_name,
            "email": user.get("email"),
            "segment": segment,
            "user": user,
            "merged_into": merged_into,
            "token": token,
            "reset_link": link,
            "expires_at": expires_at if token is not None else None,
        }

    def check(self) -> None:
        """Render every enabled segment once with sample values, to fail before sending.

        Raises:
            SpecError: a template uses an unknown variable or fails to render.
        """
        user = {"email": "someone@example.com", **dict.fromkeys(self.notify.context_fields, "x")}
        for name in self._segments:
            for token in ("sample-token", None):
                ctx = self.context(
                    segment=name,
                    user=user,
                    token=token,
                    expires_at="2030-01-01 00:00 UTC",
                    merged_into="1",
                )
                try:
                    self.render(name, ctx)
                except jinja2.TemplateError as exc:
                    raise SpecError(f"notify.segments.{name}", f"template error: {exc}") from None

    def _compile(self, name: str, seg: SegmentSpec) -> _Segment:
        path = f"notify.segments.{name}"
        builtin = name in BUILTIN_SEGMENTS
        subject_src = seg.subject or DEFAULT_SUBJECTS.get(name) or "{{ shop_name }}"
        text_src = (
            self._source(seg.text_template, f"{path}.text_template")
            if (seg.text_template)
            else self._default(f"{name}.txt.j2")
        )
        html_src: str | None
        if seg.html_template:
            html_src = self._source(seg.html_template, f"{path}.html_template")
        elif builtin and not seg.text_template:
            html_src = self._default(f"{name}.html.j2")
        else:
            html_src = None  # a custom text template without HTML: a text-only message
        used: set[str] = set()
        compiled: list[jinja2.Template | None] = []
        for env, src, key in (
            (self._text_env, subject_src, "subject"),
            (self._text_env, text_src, "text_template"),
            (self._html_env, html_src, "html_template"),
        ):
            if src is None:
                compiled.append(None)
                continue
            try:
                used |= jinja2.meta.find_undeclared_variables(env.parse(src))
                compiled.append(env.from_string(src))
            except jinja2.TemplateSyntaxError as exc:
                raise SpecError(f"{path}.{key}", f"template syntax error: {exc}") from None
        subject, text, html = compiled
        assert subject is not None and text is not None
        return _Segment(subject, text, html, bool(used & TOKEN_VARIABLES))

    def _source(self, ref: str, path: str) -> str:
        file = Path(ref)
        if not file.is_absolute():
            file = self.base_dir / file
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(path, f"cannot read template {file}: {exc.strerror}") from None

    @staticmethod
    def _default(filename: str) -> str:
        return (_DEFAULT_DIR / filename).read_text(encoding="utf-8")
