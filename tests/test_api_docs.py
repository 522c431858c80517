"""``/docs`` and ``/redoc`` work with no internet: every asset they load comes from the app."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.simulator.server import serve_in_background
from tests.conftest import make_settings
from tests.services import need_chromium

PAGES = ["/docs", "/redoc", "/docs/oauth2-redirect"]

# Anything with a scheme (https://, http://, ws://…), and protocol-relative //host where a URL
# starts: in an attribute, a quoted string or url(…). JavaScript `// comments` are not URLs.
SCHEME_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)
PROTOCOL_RELATIVE = re.compile(r"""[=("']\s*//""")
SWAGGER_SPEC_URL = re.compile(r"""\burl:\s*'([^']*)'""")

# Per kind of asset: the content type it must be served with and a size below which it cannot
# be the real thing (the Swagger UI and ReDoc bundles are each over 1 MB).
EXPECTED = {
    "script": (("text/javascript", "application/javascript"), 100_000),
    "stylesheet": (("text/css",), 10_000),
    "icon": (("image/",), 100),
}


class _References(HTMLParser):
    """Every URL in the page's tags, by what the browser does with it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and values.get("src"):
            self.found.append(("script", values["src"]))
        elif tag == "link" and values.get("href"):
            rel = values.get("rel", "").lower()
            kind = "stylesheet" if "stylesheet" in rel else "icon" if "icon" in rel else rel
            self.found.append((kind, values["href"]))
        elif tag == "redoc" and values.get("spec-url"):
            self.found.append(("spec", values["spec-url"]))
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            value = values.get(name)
            if value and tag not in ("script", "link"):
                self.found.append((f"{tag}.{name}", value))


def references(html: str) -> list[tuple[str, str]]:
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.found + [("spec", url) for url in SWAGGER_SPEC_URL.findall(html)]


def build_app(tmp_path: Path) -> FastAPI:
    # No provider and a callback secret in the settings: the lifespan never touches the database.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    return create_app(settings, providers={}, background_jobs=False)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    application = build_app(tmp_path)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http


@pytest.mark.parametrize("page", PAGES)
async def test_pages_name_no_other_host(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert SCHEME_URL.findall(html) == [], html
    assert PROTOCOL_RELATIVE.findall(html) == [], html
    for kind, url in references(html):
        # Path-absolute: the same origin as the page, whatever host the gateway is reached on.
        assert url.startswith("/"), (kind, url)
        assert not url.startswith("//"), (kind, url)


@pytest.mark.parametrize(
    ("page", "title", "kinds"),
    [
        ("/docs", "momo-gateway - Swagger UI", {"script", "stylesheet", "icon", "spec"}),
        ("/redoc", "momo-gateway - ReDoc", {"script", "icon", "spec"}),
    ],
)
async def test_every_asset_is_served_by_the_app(
    client: httpx.AsyncClient, page: str, title: str, kinds: set[str]
) -> None:
    html = (await client.get(page)).text
    assert f"<title>{title}</title>" in html
    found = references(html)
    assert {kind for kind, _ in found} == kinds, found
    for kind, url in found:
        response = await client.get(url)
        assert response.status_code == 200, (kind, url)
        content_type = response.headers["content-type"]
        if kind == "spec":
            assert url == "/openapi.json"
            assert "/v1/payments" in response.json()["paths"]
            continue
        types, minimum = EXPECTED[kind]
        assert content_type.startswith(types), (url, content_type)
        assert len(response.content) > minimum, (url, len(response.content))


async def test_doc_pages_stay_out_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


async def test_links_follow_the_root_path_behind_a_proxy(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=build_app(tmp_path), root_path="/gateway")
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        for page in ("/docs", "/redoc"):
            found = references((await http.get(page)).text)
            assert found
            assert all(url.startswith("/gateway/") for _, url in found), found


@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        # Swagger UI draws one block per operation; ReDoc one heading per operation summary.
        ("/docs", ['class="swagger-ui', "opblock", 'data-path="/v1/payments"']),
        ("/redoc", ["redoc-wrap", "/v1/payments"]),
    ],
)
async def test_a_browser_with_no_internet_renders_the_page(
    tmp_path: Path, page: str, rendered: list[str]
) -> None:
    chromium = need_chromium()
    async with serve_in_background(build_app(tmp_path)) as base_url:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # As with no network: every host but the gateway's fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"{base_url}{page}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    dom = stdout.decode()
    assert process.returncode == 0, stderr.decode()[-2000:]
    for text in rendered:
        assert text in dom, (text, dom[-2000:])
