"""Helpers shared by the benchmarks: the Debian FAQ corpus (a real QA corpus nobody here wrote)."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
FAQ_DIR = "usr/share/doc/debian/FAQ"
_HEAD = re.compile(r"^\W?(\d+)\.(\d+)\.\s+(\S.*)$")


def fetch_debian_faq() -> Path:
    """`apt-get download` the English and Chinese Debian FAQ packages and unpack them (cached)."""
    out = CACHE / "debian-faq"
    if (out / FAQ_DIR / "debian-faq.zh-cn.txt.gz").exists():
        return out / FAQ_DIR
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "debian-faq", "debian-faq-zh-cn"], cwd=out, check=True,
                   capture_output=True)
    for deb in out.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    return out / FAQ_DIR


def faq_sections(txt_gz: Path) -> list[tuple[str, str, str]]:
    """(number, question, answer) for each numbered section of the plain-text FAQ.

    The table of contents is indented; the body's section headings start at column 0 (a heading may
    wrap onto following unindented lines) and their answers are indented.
    """
    lines = gzip.open(txt_gz, "rt", encoding="utf-8").read().splitlines()
    sections, cur, i = [], None, 0
    while i < len(lines):
        m = _HEAD.match(lines[i])
        if m and not lines[i].startswith(" "):
            if cur:
                sections.append(cur)
            q = m.group(3)
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(" "):
                i += 1
                q += " " + lines[i].strip()
            cur = (f"{m.group(1)}.{m.group(2)}", q.strip(), [])
        elif lines[i].startswith("Chapter ") or lines[i].startswith("第"):
            if cur:
                sections.append(cur)
            cur = None
        elif cur is not None:
            cur[2].append(lines[i])
        i += 1
    if cur:
        sections.append(cur)
    return [(n, q, "\n".join(a).strip()) for n, q, a in sections if "\n".join(a).strip()]


def write_corpus(dest: Path) -> list[dict]:
    """Write one file per answer (without its question) for both languages; return the queries."""
    src = fetch_debian_faq()
    queries = []
    for lang, name in (("en", "debian-faq.en.txt.gz"), ("zh", "debian-faq.zh-cn.txt.gz")):
        for num, question, answer in faq_sections(src / name):
            rel = f"{lang}/{num}.txt"
            (dest / lang).mkdir(parents=True, exist_ok=True)
            # dedent, keep paragraphs
            body = "\n".join(line[4:] if line.startswith("    ") else line for line in answer.splitlines())
            (dest / rel).write_text(body + "\n", encoding="utf-8")
            queries.append({"query": question, "target": rel, "language": lang})
    return queries
