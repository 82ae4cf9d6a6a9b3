"""Nothing a client sends gets a 500: odd methods, undecodable bytes, broken multipart,
part names that look like paths, bodies of the wrong type."""

from __future__ import annotations

import httpx
import pytest
from sec_helpers import client_for

from accounts import new_user

PATHS = ["/", "/tap", "/tap/sync", "/tap/async", "/tap/tables", "/tap/capabilities",
         "/auth/token", "/auth/whoami", "/api/usertables", "/api/workspaces",
         "/api/admin/users", "/ws/x/y/tap/sync"]


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "OPTIONS", "HEAD", "TRACE",
                                    "FOO"])
def test_odd_methods(demo_server, method):
    with client_for(demo_server) as c:
        for path in PATHS:
            assert c.request(method, path).status_code < 500, path


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--xx\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + b"--xx--\r\n"


UPLOAD_QUERY = b"SELECT * FROM tap_upload.t1"
BODIES = {
    "invalid_utf8_percent": (b"LANG=ADQL&QUERY=SELECT%20%FF%FE%20FROM%20x",
                             "application/x-www-form-urlencoded"),
    "invalid_utf8_raw": (b"LANG=ADQL&QUERY=SELECT \xff\xfe FROM x",
                         "application/x-www-form-urlencoded"),
    "unknown_charset": (b"LANG=ADQL&QUERY=1", "application/x-www-form-urlencoded; charset=x"),
    "multipart_no_boundary": (b"abc", "multipart/form-data"),
    "multipart_empty": (b"", "multipart/form-data; boundary=xx"),
    "multipart_truncated": (b'--xx\r\nContent-Disposition: form-data; name="QUERY"\r\n\r\nSEL',
                            "multipart/form-data; boundary=xx"),
    "multipart_no_name": (b"--xx\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xx--\r\n",
                          "multipart/form-data; boundary=xx"),
    "filename_traversal": (_multipart(("t1", "../../../../tmp/evil", b"a,b\n1,2\n"),
                                      ("LANG", None, b"ADQL"), ("QUERY", None, UPLOAD_QUERY),
                                      ("UPLOAD", None, b"t1,param:t1")),
                           "multipart/form-data; boundary=xx"),
    "part_name_traversal": (_multipart(("../../x", "a", b"a,b\n1,2\n"),
                                       ("LANG", None, b"ADQL"), ("QUERY", None, UPLOAD_QUERY),
                                       ("UPLOAD", None, b"t1,param:../../x")),
                            "multipart/form-data; boundary=xx"),
    "upload_bad_table": (_multipart(("t1", "a", b"\x00\xff\xfe garbage"),
                                    ("LANG", None, b"ADQL"), ("QUERY", None, UPLOAD_QUERY),
                                    ("UPLOAD", None, b"t1,param:t1")),
                         "multipart/form-data; boundary=xx"),
    "upload_file_uri": (b"LANG=ADQL&QUERY=SELECT+1&UPLOAD=t1,file:///etc/passwd",
                        "application/x-www-form-urlencoded"),
    "upload_http_uri": (b"LANG=ADQL&QUERY=SELECT+1&UPLOAD=t1,http://127.0.0.1:1/x",
                        "application/x-www-form-urlencoded"),
    "json": (b'{"QUERY": "SELECT 1"}', "application/json"),
    "xml": (b"<a/>", "text/xml"),
}


@pytest.fixture(scope="module")
def user(demo_server):
    return new_user(demo_server, "http")


@pytest.mark.parametrize("body,ctype", list(BODIES.values()), ids=list(BODIES))
def test_odd_bodies(demo_server, user, body, ctype):
    for who in (None, user):
        with client_for(demo_server, who, follow_redirects=False) as c:
            for path in ("/tap/sync", "/tap/async"):
                resp = c.post(path, content=body, headers={"content-type": ctype})
                assert resp.status_code < 500, (path, resp.text[-300:])
                assert "root:" not in resp.text
    # uploaded parts are stored under names of the service's own choosing
    assert not any(p.name == "evil" for p in demo_server.data_dir.rglob("*"))
    assert not (demo_server.data_dir.parent / "x").exists()


def test_odd_bodies_on_the_json_api(demo_server, user):
    with client_for(demo_server, user) as c:
        for body in (b"\xff\xfe", b"[1]", b"null", b'{"name": 1}', b'{"users": [[]]}',
                     b"{" * 10000):
            for method, path in (("POST", "/api/workspaces"),
                                 ("PATCH", "/api/workspaces/nosuch"),
                                 ("PUT", "/api/usertables/nosuch/shares"),
                                 ("PATCH", "/api/usertables/nosuch"),
                                 ("POST", "/auth/token"), ("POST", "/auth/tokens"),
                                 ("POST", "/auth/password")):
                resp = c.request(method, path, content=body,
                                 headers={"content-type": "application/json"})
                assert resp.status_code < 500, (method, path, body[:20], resp.text[:200])


def test_uploads_of_garbage_are_400(demo_server, user):
    with client_for(demo_server, user) as c:
        for ctype, body in (("text/csv", b"\xff\xfe\x00"), ("application/fits", b"SIMPLE"),
                            ("application/x-votable+xml", b"<VOTABLE>"),
                            ("application/vnd.apache.parquet", b"PAR1xxxx"),
                            ("application/octet-stream", b"abc")):
            resp = c.put("/api/usertables/garbage", content=body,
                         headers={"content-type": ctype})
            assert 400 <= resp.status_code < 500, (ctype, resp.text[:200])


def test_long_and_odd_paths(demo_server, user):
    with client_for(demo_server, user) as c:
        for path in ("/tap/tables/" + "a" * 5000, "/api/usertables/" + "a" * 5000,
                     "/api/usertables/%00", "/api/usertables/..%2f..%2fetc",
                     "/tap/async/" + "j" * 5000, "/tap/async/%00/phase",
                     "/ws/" + "a" * 3000 + "/b/tap/tables", "/api/tables/a/%00"):
            resp = c.get(path)
            assert resp.status_code < 500, (path[:40], resp.text[:200])
    resp = httpx.get(demo_server.url + "/tap/tables?detail=" + "x" * 5000)
    assert resp.status_code < 500
