"""scripts/check_docs.py: it fails on each problem it is meant to catch."""

import importlib.util
import os
import sys
import types

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


def test_unreferenced_image_is_found(check_docs, tmp_path):
    docs = _docs(
        tmp_path,
        {
            "index.md": "![a plot](img/a.png)\n",
            "img/a.png": "png",
            "img/old.png": "png",
        },
    )
    assert check_docs.check_images(docs) == [
        "img/old.png: not referenced by any page (delete it)"
    ]


def _fake_api(monkeypatch):
    """A module `fake_api` with one object of each kind the check meets."""
    module = types.ModuleType("fake_api")

    def documented():
        """Do it.

        Examples:
            >>> documented()
        """

    def bare():
        """Do it."""

    class Record:
        """A record without an example."""

    class Oops(ValueError):
        """Raised, not called."""

    for obj in (documented, bare, Record, Oops):
        obj.__module__ = "fake_api"
        setattr(module, obj.__name__, obj)
    module.__all__ = ["documented", "bare", "Record", "Oops"]
    monkeypatch.setitem(sys.modules, "fake_api", module)
    return module


def test_missing_examples_are_found(check_docs, tmp_path, monkeypatch):
    _fake_api(monkeypatch)
    docs = _docs(
        tmp_path,
        {
            "api/fake.md": "# Fake\n\n::: fake_api\n",
            "api/one.md": (
                "::: fake_api.documented\n    options:\n"
                "      heading_level: 2\n\n::: fake_api.bare\n"
            ),
            "api/index.md": (
                "::: fake_api\n    options:\n      members: false\n"
            ),
            "api/internals.md": "::: fake_api.Record\n",
        },
    )
    rendered = [q for _, q, _ in check_docs.api_objects(docs)]
    assert rendered == [
        "fake_api.documented",
        "fake_api.bare",
        "fake_api.Record",
        "fake_api.Oops",
        "fake_api.documented",
        "fake_api.bare",
    ]
    assert check_docs.check_examples(docs) == [
        "api/fake.md: fake_api.bare: no example (a >>> line) in its docstring",
        "api/fake.md: fake_api.Record: no example (a >>> line) in its "
        "docstring",
    ]


def test_example_problem(check_docs):
    assert check_docs.example_problem(check_docs.example_problem) is None
    assert check_docs.example_problem(KeyError) is None
    assert check_docs.example_problem(lambda: None) == (
        "no example (a >>> line) in its docstring"
    )


def test_the_repository_docs_pass(check_docs):
    docs = os.path.join(_ROOT, "docs")
    assert check_docs.check_pages(docs) == []
    assert check_docs.check_images(docs) == []
    assert check_docs.check_summaries() == []
    assert check_docs.check_examples(docs) == []
    # The check sees what the API pages render: SWNModel and a member of
    # a module page's `__all__`.
    rendered = {q for _, q, _ in check_docs.api_objects(docs)}
    assert "keras_swn.models.swn_model.SWNModel" in rendered
    assert "keras_swn.layers.SuperWeightConv2D" in rendered
