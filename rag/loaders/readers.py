"""One reader per file format. Each turns a file into Markdown-like text (headings as `#`, lists as
`- `, tables as `| a | b |` rows) so that chunking treats every format alike.

A reader raises `Unreadable` with a reason the user can act on; the caller skips the file and
reports it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import Unreadable


@dataclass
class Parsed:
    text: str
    title: str | None = None
    page_starts: list[int] = field(default_factory=list)
    """Character offset where each page begins (PDF only)."""
    tags: list[str] = field(default_factory=list)
    kind: str = "text"
    """'text', 'html', 'pdf', 'docx' or 'faq-table' (every section is one question and its answer)."""
    navigation: str | None = None
    """Why the page is navigation (most of its text is links), or None."""


# Byte-order marks, longest first: UTF-32-LE's BOM begins with UTF-16-LE's.
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _bomless_utf16(raw: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the bytes look like UTF-16 without a BOM (Windows tools write it):
    in mostly-ASCII text every other byte is zero. None otherwise."""
    sample = raw[:4096]
    pairs = len(sample) // 2
    if pairs < 2 or len(raw) % 2:
        return None
    odd_zero = sum(1 for b in sample[1::2] if b == 0) / pairs
    even_zero = sum(1 for b in sample[0::2] if b == 0) / pairs
    if odd_zero > 0.3 and even_zero < 0.05:
        return "utf-16-le"
    if even_zero > 0.3 and odd_zero < 0.05:
        return "utf-16-be"
    return None


def decode(raw: bytes, path: Path) -> str:
    """Text of a file: UTF-8, or UTF-16/UTF-32 when a byte-order mark (or, for UTF-16, the zero bytes of
    mostly-ASCII text) says so.

    Raises:
        Unreadable: the bytes are not valid in that encoding; the message names the line and how to convert.
    """
    bom, encoding = next(((b, enc) for b, enc in _BOMS if raw.startswith(b)), (b"", None))
    body = raw[len(bom):]
    encoding = encoding or _bomless_utf16(raw) or "utf-8"
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as e:
        if encoding == "utf-8":
            line = body[: e.start].count(b"\n") + 1
            raise Unreadable(
                f"{path}:{line}: not valid UTF-8 (byte {e.start}). Convert it, e.g. "
                f"`iconv -f GB18030 -t UTF-8 '{path.name}' > fixed.txt`."
            ) from None
        line = body[: e.start].decode(encoding, errors="replace").count("\n") + 1
        raise Unreadable(
            f"{path}:{line}: not valid {encoding.upper()} (byte {e.start}; the file starts like {encoding.upper()} "
            f"text but is damaged or truncated). Re-save it as UTF-8, e.g. "
            f"`iconv -f {encoding.upper()} -t UTF-8 '{path.name}' > fixed.txt`."
        ) from None


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def read_text(path: Path) -> Parsed:
    """.md/.txt; Markdown front matter may set `title:` and `tags:`."""
    text = decode(path.read_bytes(), path)
    m = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if not m:
        return Parsed(text)
    import yaml

    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        raise Unreadable(f"{path}: front matter is not valid YAML ({e}).") from None
    tags = meta.get("tags") or []
    tags = [t.strip() for t in tags.split(",")] if isinstance(tags, str) else [str(t) for t in tags]
    return Parsed(text[m.end() :], title=meta.get("title"), tags=[t for t in tags if t])


_BOILERPLATE_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg")
_BOILERPLATE_HINT = re.compile(r"\b(nav|navbar|navheader|navfooter|menu|footer|sidebar|breadcrumbs?|cookie|banner|skip-link|toc|"
                               r"table-of-contents|list-of-(?:tables|figures|examples))\b", re.I)
"""Classes and ids of navigation. A table of contents (DocBook's `<div class="toc">`) lists other sections'
questions: retrieved as context it invites copying a question instead of answering one."""


def read_html(path: Path) -> Parsed:
    """HTML without navigation, tables of contents and boilerplate; headings, lists and tables kept."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode(path.read_bytes(), path), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(_BOILERPLATE_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": re.compile("navigation|banner|contentinfo")}):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.attrs is not None and _BOILERPLATE_HINT.search(" ".join([*tag.get("class", []), tag.get("id", "")])):
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines: list[str] = []
    _html_blocks(root, lines)
    text = "\n\n".join(ln for ln in lines if ln.strip())
    h1 = soup.find("h1")
    return Parsed(text, title=(_text(h1) if h1 else None) or title, kind="html", navigation=_link_page(root))


NAV_LINKS, NAV_SHARE = 10, 0.6
"""A page with at least NAV_LINKS links whose text is at least NAV_SHARE of all its text is navigation."""


def _link_page(root) -> str | None:
    """Why `root` is a navigation page (a table of contents, an index, a site map), or None."""
    links = [len("".join(a.get_text().split())) for a in root.find_all("a")]
    total = len("".join(root.get_text().split()))
    if len(links) < NAV_LINKS or not total or sum(links) < NAV_SHARE * total:
        return None
    return f"{len(links)} links making {sum(links) / total:.0%} of its text"


_CJK = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_BETWEEN_CJK = re.compile(f"(?<=[{_CJK}]) +(?=[{_CJK}])")


def _text(el) -> str:
    """An element's text on one line: inline tags joined by one space, none between two CJK characters
    (bs4's separator would write "并 不 意味着" for `并<em>不</em>意味着`)."""
    return _BETWEEN_CJK.sub("", " ".join(el.get_text(" ", strip=True).split()))


def _code(el) -> str:
    """A `<pre>` block as a fenced code block, lines kept: its '#' lines (shell comments, root prompts) are
    code, never headings."""
    body = el.get_text().strip("\n")
    fence = "~~~~" if "```" in body else "```"
    return f"{fence}\n{body}\n{fence}" if body.strip() else ""


def _mixed(node, out: list[str]) -> None:
    """A block whose inline text surrounds code blocks: each run of text one paragraph, each code block fenced."""
    words: list[str] = []

    def flush() -> None:
        text = _BETWEEN_CJK.sub("", " ".join(" ".join(words).split()))
        if text:
            out.append(text)
        words.clear()

    for child in node.children:
        name = getattr(child, "name", None)
        if name == "pre" or (name is not None and child.find("pre") is not None):
            flush()
            if name == "pre":
                out.append(_code(child))
            else:
                _mixed(child, out)
        else:
            words.append(str(child) if name is None else child.get_text(" ", strip=True))
    flush()


def _html_blocks(node, out: list[str]) -> None:
    for child in node.children:
        name = getattr(child, "name", None)
        if name is None:
            text = _BETWEEN_CJK.sub("", " ".join(str(child).split()))
            if text:
                out.append(text)
        elif re.fullmatch(r"h[1-6]", name):
            if heading := _text(child):  # an empty heading (DocBook's subtitle slot) is no section
                out.append("#" * int(name[1]) + " " + heading)
        elif name == "pre":
            out.append(_code(child))
        elif name in ("p", "blockquote", "dt", "dd", "figcaption"):
            pre = child.find("pre")
            if pre is None:
                out.append(_text(child))
            else:  # a paragraph holding a code block (DocBook's <p><pre>): its text around the code
                _mixed(child, out)
        elif name in ("ul", "ol"):
            items = [_text(li) for li in child.find_all("li", recursive=False)]
            out.append("\n".join(f"- {i}" for i in items if i))
        elif name == "table":
            rows = [[_text(c) for c in tr.find_all(["th", "td"])] for tr in child.find_all("tr")]
            out.append("\n".join("| " + " | ".join(r) + " |" for r in rows if r))
        else:
            _html_blocks(child, out)


def read_pdf(path: Path) -> Parsed:
    """Text of every page, with each page's starting offset kept for citations."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise Unreadable(f"{path}: the PDF is encrypted. Save an unprotected copy and ingest that.")
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
    except (PdfReadError, ValueError, KeyError) as e:
        raise Unreadable(f"{path}: not a readable PDF ({e}).") from None
    if not any(pages):
        raise Unreadable(f"{path}: the PDF has no extractable text (a scan?). Run OCR on it first.")
    text, starts = "", []
    for page in pages:
        starts.append(len(text))
        text += page + "\n\n"
    meta_title = (reader.metadata.title if reader.metadata else None) or None
    return Parsed(text, title=meta_title, page_starts=starts, kind="pdf")


def read_docx(path: Path) -> Parsed:
    """Word paragraphs and tables in document order; Heading styles become `#` headings."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    raw = path.read_bytes()  # read here, so a file that cannot be opened says so (python-docx calls it "not found")
    try:
        d = docx.Document(io.BytesIO(raw))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as e:
        raise Unreadable(f"{path}: not a readable .docx file, damaged or truncated? ({type(e).__name__}). Open and save "
                         "it again in Word, or move it out of the folder.") from None
    blocks = []
    for el in d.element.body.iterchildren():
        if el.tag.endswith("}p"):
            p = Paragraph(el, d)
            text, style = p.text.strip(), (p.style.name if p.style is not None else "") or ""
            if not text:
                continue
            m = re.match(r"Heading (\d)", style)
            if style == "Title":
                blocks.append(f"# {text}")
            elif m:
                blocks.append("#" * int(m.group(1)) + f" {text}")
            elif "List" in style:
                blocks.append(f"- {text}")
            else:
                blocks.append(text)
        elif el.tag.endswith("}tbl"):
            rows = [[c.text.strip() for c in r.cells] for r in Table(el, d).rows]
            blocks.append("\n".join("| " + " | ".join(r) + " |" for r in rows))
    # consecutive list items form one list block
    text = re.sub(r"(^- .*)\n\n(?=- )", r"\1\n", "\n\n".join(blocks), flags=re.M)
    return Parsed(text, title=d.core_properties.title or None, kind="docx")


_Q_COLS = ("question", "q", "问题", "问", "prompt", "instruction")
_A_COLS = ("answer", "a", "答案", "答", "回答", "response", "output")


def _qa_columns(fields: list[str], path: Path) -> tuple[str, str]:
    low = {f.strip().lower(): f for f in fields}
    q = next((low[c] for c in _Q_COLS if c in low), None)
    a = next((low[c] for c in _A_COLS if c in low), None)
    if not q or not a:
        raise Unreadable(
            f"{path}: an FAQ table needs a question and an answer column (e.g. 'question'/'answer' or "
            f"'问题'/'答案'); found: {', '.join(fields) or 'none'}."
        )
    return q, a


def _faq(rows: list[tuple[str, str]], path: Path) -> Parsed:
    rows = [(q.strip(), a.strip()) for q, a in rows if q and a and q.strip() and a.strip()]
    if not rows:
        raise Unreadable(f"{path}: no rows with both a question and an answer.")
    text = "\n\n".join(f"## {q}\n\n{a}" for q, a in rows)
    return Parsed(text, kind="faq-table")


def read_csv(path: Path) -> Parsed:
    """A CSV FAQ: one question/answer pair per row."""
    text = decode(path.read_bytes(), path)
    reader = csv.DictReader(io.StringIO(text))
    q, a = _qa_columns(reader.fieldnames or [], path)
    return _faq([(r.get(q) or "", r.get(a) or "") for r in reader], path)


def read_jsonl(path: Path) -> Parsed:
    """A JSONL FAQ: one {"question": ..., "answer": ...} object per line."""
    rows = []
    for n, line in enumerate(decode(path.read_bytes(), path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise Unreadable(f"{path}:{n}: broken JSON ({e.msg}). Fix or delete the line.") from None
        if not isinstance(obj, dict):
            raise Unreadable(f"{path}:{n}: expected a JSON object with question/answer fields.")
        q, a = _qa_columns(list(obj), Path(f"{path}:{n}"))
        rows.append((str(obj[q]), str(obj[a])))
    return _faq(rows, path)


READERS = {
    ".md": read_text, ".markdown": read_text, ".txt": read_text,
    ".html": read_html, ".htm": read_html,
    ".pdf": read_pdf, ".docx": read_docx,
    ".csv": read_csv, ".jsonl": read_jsonl,
}
