"""The report's content as a few kinds of blocks, rendered to Markdown and to self-contained HTML.

Building the content once and rendering it twice keeps `eval.md` and `eval.html` saying the same thing.
No Markdown library is needed: the blocks are plain, and every piece of text (a model's answer may
hold `<script>`) is escaped for the format it lands in.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str
    style: str | None = None
    """"pass", "fail" or "warn": coloured in HTML, bold (warn: a quoted bold line) in Markdown."""


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Image:
    src: str
    """Relative to the report (`charts/facts.png`), so the folder can be moved or served as is."""
    alt: str


Block = Heading | Para | Bullets | Table | Image


def _md_text(text: str) -> str:
    # `<` would open a raw HTML tag in every Markdown viewer: an answer's `<script>` must stay text.
    return text.replace("<", "&lt;")


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def render_markdown(blocks: list[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown (tables with `|`, images as `![alt](src)`)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_md_text(b.text)}")
        elif isinstance(b, Para):
            text = _md_text(b.text)
            out.append(f"> **{text}**" if b.style == "warn" else f"**{text}**" if b.style else text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {_md_text(i)}" for i in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                     "|" + "|".join(" --- " for _ in b.header) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"![{_md_cell(b.alt)}]({b.src})")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "PingFang SC", "Microsoft YaHei",
       sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td { max-width: 32em; overflow-wrap: anywhere; }
img { max-width: 100%; }
.pass { color: #176f2c; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
.warn { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.5em 1em; font-weight: bold; }
"""


def _h(text: str) -> str:
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>")


def render_html(blocks: list[Block], title: str) -> str:
    """The blocks as one self-contained HTML page (inline CSS, UTF-8, images by relative path)."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 6)
            body.append(f"<h{level}>{_h(b.text)}</h{level}>")
        elif isinstance(b, Para):
            cls = f' class="{html.escape(b.style)}"' if b.style else ""
            body.append(f"<p{cls}>{_h(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_h(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_h(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            body.append(f'<figure><img src="{html.escape(b.src, quote=True)}" alt="{html.escape(b.alt, quote=True)}">'
                        "</figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{_h(title)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
