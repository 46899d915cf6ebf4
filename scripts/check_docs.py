"""Check what a strict MkDocs build does not: the docs a reader sees.

Fails (exit status 1, one line per problem) on:

- **cut summaries**: a public object (in a public module's `__all__`, and
  the public methods of those classes) whose docstring's first line is not
  a whole sentence: the first paragraph must be one line ending in `.`,
  `?`, `!` or `:` (mkdocstrings shows that line alone in summaries);
- **internal pages in the public nav**: an API page other than
  `api/internals.md` that renders an internal module (`::: keras_swn...`
  naming one of `INTERNAL`);
- **missing images**: a Markdown image under docs/ whose file does not
  exist;
- **wide code**: a line of a fenced code block wider than `MAX_CODE`
  characters (it would scroll at 1280 px);
- **prompts**: a line starting with `$ ` in a shell or console block (the
  copy button would copy the prompt);
- **unreferenced images**: a file in docs/img/ that no page shows (an old
  plot left behind);
- **missing examples**: a class or function on a public API page (a
  `::: name` of docs/api/*.md other than `INTERNAL_PAGES`, or a member of
  a module's `__all__` rendered there) whose docstring has no `>>>`
  example (run as a doctest in CI). Exception and warning classes are
  exempt (they are raised, not called), and so are the names in
  `PENDING_EXAMPLES`.

Usage: python scripts/check_docs.py [--docs docs] [--no-api]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_CODE = 88
PUBLIC_MODULES = (
    "keras_swn",
    "keras_swn.models",
    "keras_swn.layers",
    "keras_swn.bank",
    "keras_swn.policy",
    "keras_swn.analysis",
    "keras_swn.search",
    "keras_swn.ensembles",
    "keras_swn.export",
    "keras_swn.data",
    "keras_swn.callbacks",
)
INTERNAL = (
    "keras_swn.search.oracle",
    "keras_swn.search.phases",
    "keras_swn.io.store",
    "keras_swn.search.steps",
    "keras_swn.search.run_config",
    "keras_swn.search.RunConfig",
    "keras_swn.search.builders",
    "keras_swn.bank.layout",
    "keras_swn.bank.batched",
    "keras_swn.bank.assembly",
)
INTERNAL_PAGES = ("api/internals.md",)
#: Public objects whose example is still to be written (their module is
#: being reworked); remove a name when its docstring gains one.
PENDING_EXAMPLES: tuple[str, ...] = ()
SHELL = {"bash", "sh", "shell", "console", "zsh"}
_SENTENCE_END = (".", "?", "!", ":")


def summary_problem(doc: str | None) -> str | None:
    """What is wrong with a docstring's one-line summary, or None.

    Args:
        doc: the docstring (or None).

    Returns:
        None when the first line is a whole sentence, else a short reason.

    Examples:
        >>> summary_problem("Compose the kernel.\\n\\nMore.")
        >>> summary_problem("Compose the kernel of one\\nlayer.")
        'summary runs onto a second line'
        >>> summary_problem("Compose the kernel")
        'summary does not end a sentence'
    """
    if not doc or not doc.strip():
        return "no docstring"
    lines = inspect.cleandoc(doc).split("\n")
    first = lines[0].strip()
    if len(lines) > 1 and lines[1].strip():
        return "summary runs onto a second line"
    if not first.endswith(_SENTENCE_END):
        return "summary does not end a sentence"
    return None


def public_objects():
    """`(qualified name, object)` of every public object to check."""
    seen = set()
    for mod_name in PUBLIC_MODULES:
        module = importlib.import_module(mod_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if obj is None or inspect.ismodule(obj) or id(obj) in seen:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            seen.add(id(obj))
            yield f"{mod_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    if isinstance(value, property):
                        value = value.fget
                    if inspect.isfunction(value):
                        yield f"{mod_name}.{name}.{attr}", value


def check_summaries() -> list[str]:
    problems = []
    for qualname, obj in public_objects():
        problem = summary_problem(inspect.getdoc(obj) or obj.__doc__)
        if problem and problem != "no docstring":
            first = (inspect.getdoc(obj) or "").split("\n")[0]
            problems.append(f"{qualname}: {problem}: {first!r}")
    return problems


def _fences(text: str):
    """`(language, first line number, lines)` of every fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        yield (
            lang.lower(),
            start + 1,
            [ln[len(indent) :] for ln in lines[start:j]],
        )
        i = j + 1


def check_pages(docs: str) -> list[str]:
    problems = []
    for folder, _, files in os.walk(docs):
        for name in sorted(files):
            if not name.endswith(".md"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, docs).replace(os.sep, "/")
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for m in re.finditer(r"!\[[^\]]*\]\(([^)\s]+)", text):
                target = m.group(1)
                if "://" in target:
                    continue
                file = os.path.normpath(os.path.join(folder, target))
                if not os.path.isfile(file):
                    line = text.count("\n", 0, m.start()) + 1
                    problems.append(f"{rel}:{line}: image {target} is missing")
            for lang, first, block in _fences(text):
                for k, line in enumerate(block):
                    if len(line) > MAX_CODE:
                        problems.append(
                            f"{rel}:{first + k}: code line of {len(line)} "
                            f"characters (at most {MAX_CODE})"
                        )
                    if lang in SHELL and line.startswith("$ "):
                        problems.append(
                            f"{rel}:{first + k}: prompt '$ ' in a {lang} "
                            "block (the copy button copies it)"
                        )
            if rel.startswith("api/") and rel not in INTERNAL_PAGES:
                for m in re.finditer(r"^:::\s+(\S+)", text, re.M):
                    ident = m.group(1)
                    if any(
                        ident == i or ident.startswith(i + ".")
                        for i in INTERNAL
                    ):
                        line = text.count("\n", 0, m.start()) + 1
                        problems.append(
                            f"{rel}:{line}: internal {ident} on a public "
                            "API page (move it to api/internals.md)"
                        )
    return problems


def check_images(docs: str) -> list[str]:
    """Images in `docs/img/` that no page references."""
    img = os.path.join(docs, "img")
    if not os.path.isdir(img):
        return []
    text = ""
    for folder, _, files in os.walk(docs):
        for name in files:
            if name.endswith((".md", ".html", ".css")):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    text += f.read()
    return [
        f"img/{name}: not referenced by any page (delete it)"
        for name in sorted(os.listdir(img))
        if name not in text
    ]


def _resolve(ident: str):
    """The object a `::: ident` directive renders."""
    parts = ident.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(ident)


def api_objects(docs: str):
    """`(page, qualified name, object)` of every class and function that a
    public API page renders: each `::: name`, and for a module each name
    of its `__all__` (unless the directive says `members: false`)."""
    api = os.path.join(docs, "api")
    if not os.path.isdir(api):
        return
    directive = re.compile(r"^:::\s+(\S+)(.*?)(?=^:::|\Z)", re.M | re.S)
    for name in sorted(os.listdir(api)):
        rel = f"api/{name}"
        if not name.endswith(".md") or rel in INTERNAL_PAGES:
            continue
        with open(os.path.join(api, name), encoding="utf-8") as f:
            text = f.read()
        for m in directive.finditer(text):
            ident, options = m.group(1), m.group(2)
            obj = _resolve(ident)
            if inspect.ismodule(obj):
                if re.search(r"^\s*members:\s*(false|\[\])", options, re.M):
                    continue
                members = [
                    (f"{ident}.{n}", getattr(obj, n))
                    for n in getattr(obj, "__all__", ())
                ]
            else:
                members = [(ident, obj)]
            for qualname, member in members:
                if inspect.isclass(member) or inspect.isfunction(member):
                    yield rel, qualname, member


def example_problem(obj) -> str | None:
    """Why `obj` needs an example, or None.

    Args:
        obj: a public class or function.

    Returns:
        None when its docstring has a `>>>` example (or it is an exception
        or warning class), else a short reason.

    Examples:
        >>> example_problem(ValueError)  # raised, not called
        >>> example_problem(lambda: None)
        'no example (a >>> line) in its docstring'
    """
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return None
    if ">>>" in (inspect.getdoc(obj) or ""):
        return None
    return "no example (a >>> line) in its docstring"


def check_examples(docs: str) -> list[str]:
    problems = []
    seen = set()
    for rel, qualname, obj in api_objects(docs):
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        full = f"{obj.__module__}.{obj.__qualname__}"
        if qualname in PENDING_EXAMPLES or full in PENDING_EXAMPLES:
            continue
        problem = example_problem(obj)
        if problem:
            problems.append(f"{rel}: {qualname}: {problem}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    parser.add_argument(
        "--no-api", action="store_true", help="skip the docstring checks"
    )
    args = parser.parse_args(argv)
    problems = check_pages(args.docs) + check_images(args.docs)
    if not args.no_api:
        sys.path.insert(0, ROOT)
        problems += check_summaries()
        problems += check_examples(args.docs)
    for p in problems:
        print(p)
    print(f"check_docs: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
