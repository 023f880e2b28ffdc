import pytest

from rag.errors import BadDocument, DocsNotFound, NoDocuments
from rag.loaders import detect_language, load_documents


def test_loads_every_document_with_relative_path_title_and_language(docs_dir):
    docs = {d.source: d for d in load_documents(docs_dir)}
    assert {"faq.md", "returns.md", "zh/常见问题.md"} <= set(docs)
    assert docs["returns.md"].title == "Returns Policy"
    assert docs["returns.md"].language == "en"
    assert docs["zh/常见问题.md"].language == "zh"
    assert len({d.id for d in docs.values()}) == len(docs)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DocsNotFound, match="nope"):
        load_documents(tmp_path / "nope")


def test_empty_folder_says_what_to_do(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")
    with pytest.raises(NoDocuments, match="Add your documents"):
        load_documents(tmp_path)


def test_non_utf8_file_names_file_and_line(tmp_path):
    (tmp_path / "ok.md").write_text("# fine\n\ntext\n")
    (tmp_path / "gbk.txt").write_bytes("line one\nline two\n退货政策\n".encode("gb18030"))
    with pytest.raises(BadDocument, match=r"gbk\.txt:3: not valid UTF-8"):
        load_documents(tmp_path)


def test_detect_language():
    assert detect_language("退款将在 5 至 10 个工作日内退回原支付方式") == "zh"
    assert detect_language("Refunds go back to the original payment method") == "en"
