"""Tests of ui/server.py over real HTTP: routes, the Host check, headers, read-only methods."""

from __future__ import annotations

from importlib.resources import files as package_files

import pytest

from pylightnix.ui.server import FILE_CSP, PAGE_CSP, allowed_hosts, is_loopback, make_server
from tests.helpers import listing
from tests.ui.conftest import Client, Swept


def test_page_has_csp_nosniff_and_no_inline_script(client: Client) -> None:
    """A page is HTML with the page CSP, nosniff, no framing, and only external scripts."""
    a = client.get("/")
    assert a.status == 200
    assert a.headers["content-type"] == "text/html; charset=utf-8"
    assert a.headers["content-security-policy"] == PAGE_CSP
    assert a.headers["x-content-type-options"] == "nosniff"
    assert a.headers["x-frame-options"] == "DENY"
    assert a.headers["cache-control"] == "no-store"
    text = a.body.decode()
    assert '<script src="/static/app.js" defer></script>' in text
    assert text.count("<script") == 1
    assert "style=" not in text


def test_api_answers_json_with_the_file_csp(client: Client) -> None:
    """The API answers JSON under a CSP that runs nothing, with nosniff."""
    a = client.get("/api/stages")
    assert a.status == 200
    assert a.headers["content-type"] == "application/json"
    assert a.headers["content-security-policy"] == FILE_CSP
    assert a.headers["x-content-type-options"] == "nosniff"
    assert a.json()["total"] == 7


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:80", "127.0.0.1", "127.0.0.1:1", "localhost.evil.example"],
)
def test_foreign_host_header_is_refused(client: Client, host: str) -> None:
    """A Host naming another site or port (DNS rebinding) is refused with 403 before routing."""
    a = client.get("/api/stages", host=host)
    port = client.server.port
    assert a.status == 403
    assert a.json() == {
        "error": f"refused: Host {host!r} is not this server's address "
        f"(127.0.0.1:{port}, localhost:{port}); open the view by that address",
        "status": 403,
    }


def test_missing_host_header_is_refused(client: Client) -> None:
    """A request without a Host header is refused too."""
    a = client.get("/", host="")
    assert a.status == 403
    assert a.json()["error"].startswith("refused: Host '' is not this server's address")


def test_localhost_name_and_case_are_accepted(client: Client) -> None:
    """localhost:PORT and an upper-case spelling of the address are the server's own."""
    assert client.get("/api/roots", host=f"localhost:{client.server.port}").status == 200
    assert client.get("/api/roots", host=f"LOCALHOST:{client.server.port}").status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_that_could_change_anything_are_refused(
    client: Client, swept: Swept, method: str
) -> None:
    """Only GET and HEAD are answered: others get 405 and the store stays as it was."""
    before = listing(swept.S.root)
    a = client.get(f"/api/rref/{swept.trains[0]}", method=method)
    assert a.status == 405
    assert a.headers["allow"] == "GET, HEAD"
    assert a.json() == {"error": f"{method} is not allowed: the web view is read-only"}
    assert listing(swept.S.root) == before


def test_head_sends_headers_without_a_body(client: Client) -> None:
    """HEAD answers the GET's status and length with an empty body."""
    get = client.get("/api/stages")
    head = client.get("/api/stages", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))


def test_unknown_path_is_a_404_json_error(client: Client) -> None:
    """An unknown API path answers 404 with an error naming it."""
    a = client.get("/api/nothing/here")
    assert a.status == 404
    assert a.json() == {"error": "no page or API at '/api/nothing/here'", "status": 404}


def test_unknown_page_is_an_html_error_page(client: Client) -> None:
    """An unknown page answers 404 with a page carrying the message for its script."""
    a = client.get("/nothing")
    assert a.status == 404
    assert a.headers["content-security-policy"] == PAGE_CSP
    assert 'data-message="no page or API at &#x27;/nothing&#x27;"' in a.body.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("offset=-1", "offset must be a whole number >= 0, got '-1'"),
        ("offset=x", "offset must be a whole number >= 0, got 'x'"),
        ("limit=1001", "limit must be a whole number >= 0 and at most 1000, got '1001'"),
    ],
)
def test_bad_page_numbers_are_400(client: Client, query: str, message: str) -> None:
    """Pagination values out of range are refused with the value named."""
    a = client.get(f"/api/stages?{query}")
    assert a.status == 400
    assert a.json() == {"error": message, "status": 400}


def test_static_files_come_from_our_package_and_plotly(client: Client) -> None:
    """The app's script and the chart library are served as JavaScript from installed packages."""
    a = client.get("/static/plotly.min.js")
    assert a.status == 200
    assert a.headers["content-type"] == "text/javascript; charset=utf-8"
    assert a.body == package_files("plotly").joinpath("package_data/plotly.min.js").read_bytes()
    js = client.get("/static/app.js")
    assert js.body == package_files("pylightnix.ui").joinpath("static/app.js").read_bytes()


@pytest.mark.parametrize("name", ["nope.js", "..%2Fserver.py", "%2e%2e"])
def test_static_serves_only_its_own_names(client: Client, name: str) -> None:
    """Any other static name, traversal included, is a 404."""
    a = client.get(f"/static/{name}")
    assert a.status == 404


def test_page_of_an_unknown_ref_is_404(client: Client) -> None:
    """A page for a ref that is not stored answers 404 with the library's message."""
    bad = "rref:" + "a" * 32 + "-" + "b" * 32 + "-train"
    a = client.get(f"/api/rref/{bad}")
    assert a.status == 404
    assert a.json()["error"].startswith(f"{bad} is not in the store at ")
    b = client.get("/api/rref/not-a-ref")
    assert b.status == 400
    assert b.json()["error"] == "'not-a-ref' is not an RRef (rref:<hash>-<hash>-<name>)"


def test_loopback_and_allowed_hosts() -> None:
    """Loopback is recognised; an outside address also accepts the machine's own names."""
    assert [is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "192.0.2.1", "example.org")] == [False] * 3
    assert allowed_hosts("::1", 81) == frozenset({"[::1]:81", "localhost:81"})
    assert allowed_hosts("127.0.0.1", 80) == frozenset(
        {"127.0.0.1:80", "localhost:80", "127.0.0.1", "localhost"}
    )
    assert "192.0.2.1:8080" in allowed_hosts("192.0.2.1", 8080)


def test_make_server_refuses_a_folder_without_a_store(tmp_path: object) -> None:
    """make_server checks the store first and says how to make one."""
    from pylightnix import StoreError, mkSS

    S = mkSS(str(tmp_path) + "/none")
    with pytest.raises(StoreError) as e:
        make_server(S)
    assert str(e.value) == (
        f"no pylightnix store at {S.storage!r}: initialize it with store_initialize() / "
        "fsinit(S), or `pylightnix init`"
    )


def test_runs_page_preloads_its_record(client: Client) -> None:
    """The runs page asks for its API record while its script loads (name escaped)."""
    a = client.get("/runs/dref:x")
    assert (
        '<link rel="preload" href="/api/runs/dref%3Ax" as="fetch" crossorigin>' in a.body.decode()
    )
    assert "preload" not in client.get("/").body.decode()
