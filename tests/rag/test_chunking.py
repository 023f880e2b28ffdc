from rag.chunking import chunk_document
from rag.loaders import Document


def _doc(text: str, lang: str = "en") -> Document:
    return Document(id="d", source="a.md", title="T", text=text, language=lang)


def test_heading_path_and_spans_point_into_the_document():
    text = "# Returns\n\nIntro text.\n\n## Refund timing\n\nRefunds take 5 days.\n\n# Shipping\n\nShips fast.\n"
    chunks = chunk_document(_doc(text), lambda s: len(s.split()), max_tokens=50)
    assert [c.heading_path for c in chunks] == ["Returns", "Returns > Refund timing", "Shipping"]
    for c in chunks:
        assert text[c.start : c.end] == c.text
    assert "Refunds take 5 days." in chunks[1].text


def test_code_blocks_never_yield_headings():
    text = ("# Building\n\nRun this as root:\n\n```\n# apt-get build-dep foo\n## apt-get source --build foo\n```\n\n"
            "~~~~\n# still code\n```\n# and still code\n~~~~\n\nThen test it.\n\n## Java\n\nYes.\n")
    chunks = chunk_document(_doc(text), lambda s: len(s.split()), max_tokens=200)
    assert [c.heading_path for c in chunks] == ["Building", "Building > Java"]
    assert "# and still code" in chunks[0].text and "Then test it." in chunks[0].text


def test_long_chinese_section_is_split_on_sentence_marks_within_budget():
    sentence = "仓库收到退货后，我们会在三个工作日内完成检验。"
    text = "# 退款\n\n" + sentence * 30
    count = len  # one token a character: Chinese has no spaces to count words by
    chunks = chunk_document(_doc(text, "zh"), count, max_tokens=80, overlap_sentences=1)
    assert len(chunks) > 3
    assert all(count(c.text) <= 80 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    assert chunks[0].text.startswith("# 退款\n\n仓库")  # the heading leads its text, never alone
    # overlap: each chunk starts with the sentence the previous one ended with
    assert chunks[1].text.startswith(sentence)


def test_ids_are_content_hashes():
    a = chunk_document(_doc("# A\n\nsame text\n"), len, 100)
    b = chunk_document(_doc("# A\n\nsame text\n"), len, 100)
    c = chunk_document(_doc("# A\n\nother text\n"), len, 100)
    assert a[0].id == b[0].id != c[0].id


def test_a_long_table_is_split_between_rows_never_inside_one():
    rows = "\n".join(f"| SKU-{i:04d} | Oak shelf, {i} cm wide, natural finish | ${i}.00 |" for i in range(60))
    text = "# Price list\n\n| SKU | Item | Price |\n" + rows + "\n"
    chunks = chunk_document(_doc(text), lambda s: len(s.split()), max_tokens=60)
    assert len(chunks) > 3
    for c in chunks:
        body = c.text.split("\n\n", 1)[-1]
        assert all(line.startswith("| ") and line.endswith(" |") for line in body.splitlines())
    assert sum(c.text.count("SKU-") for c in chunks) == 60  # no row lost, none repeated
