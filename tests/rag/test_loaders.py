import json

import pytest

from rag.errors import BadDocument, DocsNotFound, NoDocuments
from rag.loaders import detect_language, load_documents
from tests.rag.helpers import make_docx, make_pdf


def test_loads_every_document_with_relative_path_title_and_language(docs_dir):
    res = load_documents(docs_dir)
    docs = {d.source: d for d in res.documents}
    assert {"faq.md", "returns.md", "zh/常见问题.md"} <= set(docs) and not res.skipped
    assert docs["returns.md"].title == "Returns Policy"
    assert docs["returns.md"].language == "en" and docs["zh/常见问题.md"].language == "zh"
    assert len({d.id for d in docs.values()}) == len(docs)


def test_html_keeps_headings_lists_tables_and_drops_navigation(tmp_path):
    (tmp_path / "page.html").write_text("""<html><head><title>Shop - Help</title><script>var x=1;</script></head>
    <body><nav><a href="/">Home</a> <a href="/cart">Cart</a></nav>
    <div class="cookie-banner">We use cookies</div>
    <main><h1>Delivery</h1><div class="toc"><p><b>Table of Contents</b></p><dl><dt>3.1. How do I track a
      parcel?</dt><dt>3.2. Can I change my address?</dt></dl></div><p>Orders ship   in 2 days.</p>
      <h2>Costs</h2><ul><li>Standard: $5.95</li><li>Express: $14.95</li></ul>
      <table><tr><th>Zone</th><th>Days</th></tr><tr><td>EU</td><td>7</td></tr></table></main>
    <footer>© Lumen &amp; Oak</footer></body></html>""")
    doc = load_documents(tmp_path).documents[0]
    assert doc.title == "Delivery" and doc.kind == "html"
    assert "# Delivery" in doc.text and "## Costs" in doc.text and "Orders ship in 2 days." in doc.text
    assert "- Standard: $5.95\n- Express: $14.95" in doc.text
    assert "| Zone | Days |\n| EU | 7 |" in doc.text
    for junk in ("Home", "Cart", "cookies", "var x", "©", "Table of Contents", "track a parcel"):  # a TOC lists
        # other sections' questions: retrieved, it invites copying a question instead of answering
        assert junk not in doc.text


def test_html_chinese_has_no_stray_spaces_and_code_blocks_keep_their_lines(tmp_path):
    (tmp_path / "p.html").write_text("""<html><body><h2>7.13. 如何构建？</h2>
    <p>软件包之间的关系：<em>依赖</em>、<em>推荐</em>、建议。这并<b>不</b>意味着
    问题。用 <code>apt-get</code> 安装 <em>Debian</em> 软件包。</p><p>以 root 身份执行<pre class="screen">
# apt-get build-dep foo
# apt-get source --build foo
</pre>来看看。</p><pre>
## not a heading either
</pre><h2>7.14. 下一节？</h2><p>Keep <b>spaces</b> between words.</p></body></html>""", encoding="utf-8")
    text = load_documents(tmp_path).documents[0].text
    assert "软件包之间的关系：依赖、推荐、建议。这并不意味着问题。" in text
    assert "用 apt-get 安装 Debian 软件包。" in text and "Keep spaces between words." in text
    assert "以 root 身份执行\n\n```\n# apt-get build-dep foo\n# apt-get source --build foo\n```\n\n来看看。" in text
    assert "```\n## not a heading either\n```" in text


def test_navigation_pages_are_left_out_and_reported(tmp_path):
    items = "".join(f'<li><a href="s{i}.html">{i}. Section {i} of the manual</a></li>' for i in range(12))
    (tmp_path / "index.html").write_text(f"<html><body><h1>Manual</h1><ul>{items}</ul></body></html>")
    (tmp_path / "page.html").write_text("<html><body><h1>Returns</h1><p>Returns are free within 30 days; see "
                                        '<a href="a">our policy</a>.</p></body></html>')
    (tmp_path / "docbook.html").write_text('<html><body><div class="navheader"><table><tr><td>Debian FAQ</td></tr>'
                                           '<tr><td><a href="p">Prev</a></td><td></td><td><a href="n">Next</a></td>'
                                           '</tr></table></div><h2>1.1. What is it?</h2><p>An OS.</p><div class='
                                           '"navfooter"><table><tr><td>Chapter 2 Getting started</td></tr></table>'
                                           '</div></body></html>')
    res = load_documents(tmp_path, strict=True)
    assert {d.source for d in res.documents} == {"page.html", "docbook.html"}
    assert [s.path for s in res.skipped] == ["index.html"]
    assert "navigation page (12 links making" in res.skipped[0].reason
    docbook = next(d for d in res.documents if d.source == "docbook.html")
    assert docbook.text == "## 1.1. What is it?\n\nAn OS."


def test_pdf_pages_are_kept(tmp_path):
    make_pdf(tmp_path / "manual.pdf", ["Assembly guide\nAttach the legs first.", "Care\nWipe with a dry cloth."],
             title="Sofa Manual")
    doc = load_documents(tmp_path).documents[0]
    assert doc.title == "Sofa Manual" and doc.kind == "pdf"
    assert doc.page_at(doc.text.index("Attach the legs")) == 1
    assert doc.page_at(doc.text.index("Wipe with a dry cloth")) == 2


def test_docx_headings_lists_and_tables(tmp_path):
    doc = load_documents(make_docx(tmp_path / "handbook.docx")).documents[0]
    assert doc.title == "Warranty Handbook"
    assert "# Warranty Handbook" in doc.text and "## Claims" in doc.text
    assert "- Email warranty@lumenoak.example\n- Attach photos of the defect" in doc.text
    assert "| Sofa | 5 |" in doc.text


def test_faq_tables_become_one_section_per_question(tmp_path):
    (tmp_path / "faq.csv").write_text("问题,答案\n退款多久到账？,5 至 10 个工作日。\n能开发票吗？,可以。\n", encoding="utf-8")
    (tmp_path / "faq.jsonl").write_text(json.dumps({"question": "Gift wrap?", "answer": "Yes, $4."}) + "\n")
    docs = {d.source: d for d in load_documents(tmp_path).documents}
    assert docs["faq.csv"].kind == "faq-table" and docs["faq.csv"].language == "zh"
    assert docs["faq.csv"].text == "## 退款多久到账？\n\n5 至 10 个工作日。\n\n## 能开发票吗？\n\n可以。"
    assert docs["faq.jsonl"].text == "## Gift wrap?\n\nYes, $4."


def test_markdown_front_matter_sets_title_and_tags(tmp_path):
    (tmp_path / "p.md").write_text("---\ntitle: Price Match\ntags: [policy, pricing]\n---\n# Ignored\n\nWe match prices.\n")
    doc = load_documents(tmp_path).documents[0]
    assert (doc.title, doc.tags) == ("Price Match", ["policy", "pricing"])
    assert doc.text.startswith("# Ignored")


def test_unreadable_files_are_skipped_and_reported_the_rest_goes_in(tmp_path):
    (tmp_path / "ok.md").write_text("# fine\n\ntext\n")
    (tmp_path / "gbk.txt").write_bytes("line one\nline two\n退货政策\n".encode("gb18030"))
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (tmp_path / "faq.csv").write_text("title,body\nx,y\n")
    (tmp_path / "faq.jsonl").write_text('{"question": "q", "answer": "a"}\n{oops\n')
    res = load_documents(tmp_path)
    assert [d.source for d in res.documents] == ["ok.md"]
    reasons = {s.path: s.reason for s in res.skipped}
    assert "gbk.txt:3: not valid UTF-8" in reasons["gbk.txt"]
    assert "unsupported file type" in reasons["photo.png"]
    assert "not a readable PDF" in reasons["broken.pdf"]
    assert "question and an answer column" in reasons["faq.csv"] and "found: title, body" in reasons["faq.csv"]
    assert "faq.jsonl:2: broken JSON" in reasons["faq.jsonl"]
    with pytest.raises(BadDocument, match="broken.pdf"):
        load_documents(tmp_path, strict=True)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DocsNotFound, match="nope"):
        load_documents(tmp_path / "nope")


def test_folder_with_nothing_readable_says_what_to_do_and_why(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")
    with pytest.raises(NoDocuments, match="(?s)Add your documents.*notes.bin: unsupported"):
        load_documents(tmp_path)


def test_detect_language():
    assert detect_language("退款将在 5 至 10 个工作日内退回原支付方式") == "zh"
    assert detect_language("Refunds go back to the original payment method") == "en"


MIXED = "# 退货政策 Returns\n\n退货运费由顾客承担。Return shipping is paid by the customer.\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_are_read_by_their_byte_order_mark_or_zero_bytes(tmp_path, encoding):
    raw = MIXED.encode(encoding)
    if encoding == "utf-16-le":  # a BOM, written by hand (Notepad's "Unicode")
        raw = b"\xff\xfe" + raw
    (tmp_path / "notes.txt").write_bytes(raw)
    doc = load_documents(tmp_path).documents[0]
    assert doc.text == MIXED and doc.language == "zh"


def test_bomless_utf16_of_mostly_ascii_text_is_read(tmp_path):
    text = "# Returns\n\nReturn shipping is paid by the customer. 退货。\n"
    (tmp_path / "notes.txt").write_bytes(text.encode("utf-16-le"))
    assert load_documents(tmp_path).documents[0].text == text


def test_a_damaged_utf16_file_gets_the_utf16_hint_not_gb18030(tmp_path):
    (tmp_path / "ok.md").write_text("# fine\n\ntext\n")
    (tmp_path / "notes.txt").write_bytes(b"\xff\xfe" + "line one\n".encode("utf-16-le") + b"\x00\xd8A\x00")
    [skipped] = load_documents(tmp_path).skipped
    assert "notes.txt:2: not valid UTF-16-LE" in skipped.reason and "iconv -f UTF-16-LE" in skipped.reason
    assert "GB18030" not in skipped.reason


def test_a_utf16_text_file_with_chinese_and_english_is_ingested_and_searchable(tmp_path, embedder):
    from rag import RagConfig, Retriever, ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text("# Hours\n\nThe showroom opens at nine.\n")
    (docs / "returns.txt").write_bytes(b"\xff\xfe" + MIXED.encode("utf-16-le"))
    cfg = RagConfig(workspace=tmp_path / "ws")
    report = ingest(cfg, docs, embedder=embedder)
    assert not report.skipped and "returns.txt" in report.sources
    r = Retriever(cfg, embedder)
    assert r.search("退货运费", k=1, mode="bm25")[0].source == "returns.txt"
    assert r.search("who pays for return shipping", k=1)[0].source == "returns.txt"
