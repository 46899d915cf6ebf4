"""scripts/check_docs.py: it fails on each problem it is meant to catch."""

import importlib.util
import os

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def check_docs():
    path = os.path.join(_ROOT, "scripts", "check_docs.py")
    spec = importlib.util.spec_from_file_location("check_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docs(tmp_path, pages):
    for name, text in pages.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_summary_problem(check_docs):
    assert check_docs.summary_problem("Compose a kernel.\n\nMore.") is None
    assert check_docs.summary_problem("Args:") is None
    assert (
        check_docs.summary_problem("Compose the kernel of\none layer.")
        == "summary runs onto a second line"
    )
    assert (
        check_docs.summary_problem("Compose the kernel")
        == "summary does not end a sentence"
    )


def test_clean_pages_pass(check_docs, tmp_path):
    docs = _docs(
        tmp_path,
        {
            "index.md": "# Home\n\n![a plot](img/a.png)\n\n```bash\nls\n```\n",
            "img/a.png": "png",
            "api/internals.md": "::: keras_swn.search.oracle\n",
        },
    )
    assert check_docs.check_pages(docs) == []


def test_each_problem_is_found(check_docs, tmp_path):
    docs = _docs(
        tmp_path,
        {
            "index.md": (
                "![missing](img/none.png)\n\n"
                "```console\n$ keras-swn search\n```\n\n"
                "```python\nx = '" + "a" * 100 + "'\n```\n"
            ),
            "api/search.md": "::: keras_swn.search.oracle.PhaseOracle\n",
        },
    )
    problems = check_docs.check_pages(docs)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "index.md:1: image img/none.png is missing" in text
    assert "index.md:4: prompt" in text
    assert "index.md:8: code line of 106 characters" in text
    assert "api/search.md:1: internal keras_swn.search.oracle" in text


def test_the_repository_docs_pass(check_docs):
    assert check_docs.check_pages(os.path.join(_ROOT, "docs")) == []
    assert check_docs.check_summaries() == []
