"""The page scripts as the browser fetches them: ES modules under ``static/js``
(no bundler), so a wrong import path or MIME type would only show in a browser.
These checks run without one."""

from __future__ import annotations

import re
from urllib.parse import urljoin

# What a module imports: ``from './x.js'`` and ``import './x.js'``. Our
# modules write imports only this way (relative paths, single quotes).
IMPORT = re.compile(r"""(?:\bfrom|^import)\s+'(\.{1,2}/[^']+)'""", re.MULTILINE)
MODULE_SCRIPT = re.compile(r'<script type="module" src="([^"]+)"')
JAVASCRIPT_TYPES = ("text/javascript", "application/javascript")


def module_graph(client, entry: str) -> dict[str, list[str]]:
    """Every module reachable from ``entry``, with the URLs it imports. Each is
    checked as a browser would: 200, a JavaScript type, not to be sniffed."""
    graph: dict[str, list[str]] = {}
    todo = [entry]
    while todo:
        url = todo.pop()
        if url in graph:
            continue
        response = client.get(url)
        assert response.status_code == 200, url
        # Module scripts are refused unless their type is JavaScript.
        assert response.mimetype in JAVASCRIPT_TYPES, (url, response.mimetype)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        source = response.get_data(as_text=True)
        response.close()
        graph[url] = [urljoin(url, path) for path in IMPORT.findall(source)]
        todo += graph[url]
    return graph


def cycle_in(graph: dict[str, list[str]]) -> list[str]:
    """A chain of imports that comes back to its start, or []."""
    done: set[str] = set()

    def visit(url: str, path: list[str]) -> list[str]:
        if url in path:
            return path[path.index(url) :] + [url]
        if url in done:
            return []
        for imported in graph[url]:
            if found := visit(imported, path + [url]):
                return found
        done.add(url)
        return []

    for url in graph:
        if found := visit(url, []):
            return found
    return []


def test_upload_page_modules_load_and_import_one_way(client, signed_in):
    page = client.get("/").get_data(as_text=True)
    entries = MODULE_SCRIPT.findall(page)
    assert entries == ["/static/js/upload/main.js"]
    graph = module_graph(client, entries[0])
    assert len(graph) > 1  # the entry imports the others
    # Layers import downward only (CONVENTIONS.md, 18): in JavaScript too.
    assert cycle_in(graph) == []
    # Module scripts are fetched in CORS mode; same-origin, 'self' covers them.
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert "'self'" in directives.get("script-src", directives["default-src"])
