"""MkDocs hook: links from a page to files outside ``docs/`` point at the repository.

``docs/*.md`` are read on GitHub as well as on the built site. On GitHub a relative link
such as ``[EvalConfig](../phi3industry/evaluation/config.py)`` or ``(../examples/configs/)`` opens
the file; on the site it would be a broken link (an error under ``--strict``). This hook
rewrites such links, when the target exists, to ``{repo_url}/blob/main/PATH`` (``tree`` for
directories). Links inside ``docs/`` and links to missing files are left to MkDocs, which
checks them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\]\((?!https?:|mailto:|#|/)([^)\s]+)\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite relative links that leave ``docs/`` into repository URLs."""
    repo = (config.repo_url or "").rstrip("/")
    if not repo:
        return markdown
    docs_dir = Path(config.docs_dir).resolve()
    root = docs_dir.parent
    page_dir = (docs_dir / page.file.src_uri).parent

    def fix(match: re.Match[str]) -> str:
        path, sep, anchor = match.group(1).partition("#")
        target = (page_dir / path).resolve()
        if target.is_relative_to(docs_dir) or not target.exists():
            return match.group(0)
        kind = "tree" if target.is_dir() else "blob"
        return f"]({repo}/{kind}/main/{target.relative_to(root).as_posix()}{sep}{anchor})"

    return _LINK.sub(fix, markdown)
