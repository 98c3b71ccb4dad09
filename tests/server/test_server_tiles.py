"""C2SP tlog-tiles endpoints: tiles and entry bundles recompute the signed checkpoint's root."""

from __future__ import annotations

import time

from http_server_support import Server, event

from auditkeep.log.checkpoint import verify_checkpoint
from auditkeep.log.hashing import leaf_hash, mth
from auditkeep.log.note import NoteVerifier
from auditkeep.log.tiles import entries_path, partial_tile_keys, tile_path


def _split_bundle(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 2], "big")
        out.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    assert i == len(data)
    return out


def test_tiles_and_bundles_recompute_the_checkpoint(server: Server) -> None:
    key = server.key("tiles", "ingest,verify")
    with server.client(key) as c:
        for start in range(0, 600, 200):
            assert c.post("/v1/events", json=[event(i) for i in range(start, start + 200)]).status_code == 200
        vkey = c.get("/v1/pubkey").text.strip()
        deadline = time.monotonic() + 10
        size = 0
        while size < 600 and time.monotonic() < deadline:  # checkpoints are signed each interval
            r = c.get("/v1/logs/tiles/checkpoint")
            assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
            cp = verify_checkpoint(r.text, NoteVerifier.from_vkey(vkey))
            size = cp.size
            time.sleep(0.1)
        assert size >= 600

        leaves: list[bytes] = []
        for n in range(size // 256 + 1):
            width = min(256, size - n * 256)
            if width <= 0:
                break
            bundle = c.get(f"/v1/logs/tiles/{entries_path(n, width)}")
            assert bundle.status_code == 200, bundle.text
            assert bundle.headers["content-type"] == "application/octet-stream"
            assert ("immutable" in bundle.headers["cache-control"]) == (width == 256)
            leaves += _split_bundle(bundle.content)
        assert len(leaves) == size
        hashes = [leaf_hash(x) for x in leaves]
        assert mth(hashes) == cp.root

        for n in range(size // 256):
            full = c.get(f"/v1/logs/tiles/{tile_path(0, n)}")
            assert full.status_code == 200 and len(full.content) == 8192
            assert full.content == b"".join(hashes[n * 256 : (n + 1) * 256])
            assert "max-age=31536000" in full.headers["cache-control"]
        for level, index, width in partial_tile_keys(size):
            part = c.get(f"/v1/logs/tiles/{tile_path(level, index, width)}")
            assert part.status_code == 200 and len(part.content) == 32 * width
            if level == 1:
                assert part.content == b"".join(mth(hashes[i * 256 : (i + 1) * 256]) for i in range(width))
            else:
                assert part.content == b"".join(hashes[index * 256 : index * 256 + width])

        assert c.get("/v1/logs/tiles/tile/0/0").status_code == 404  # not canonical
        assert c.get("/v1/logs/tiles/tile/0/x000/000").status_code == 404
        assert c.get("/v1/logs/tiles/tile/0/999").status_code == 404  # beyond the tree
        assert c.get("/v1/logs/tiles/tile/entries/999.p/3").status_code == 404
        assert c.get("/v1/logs/tiles/tile/70/000").status_code == 404
        assert c.get("/v1/logs/other/tile/0/000").status_code == 403
        assert c.get("/v1/logs/nope/checkpoint").status_code == 403
    with server.client(server.admin) as c:
        assert c.get("/v1/logs/nope/checkpoint").status_code == 404
        assert c.get("/v1/logs/NOPE!/checkpoint").status_code == 422


def test_entry_bundles_are_gzip_on_the_wire_when_accepted(server: Server) -> None:
    """tlog-tiles: entry bundles SHOULD be compressed when the client accepts it. The wire
    bytes are read raw (httpx would otherwise decode them)."""
    import gzip

    key = server.key("gz", "ingest,read")
    with server.client(key) as c:
        assert c.post("/v1/events", json=[event(i) for i in range(300)]).status_code == 200
        path = f"/v1/logs/gz/{entries_path(0, 256)}"

        def raw(accept: str) -> tuple[dict[str, str], bytes]:
            with c.stream("GET", path, headers={"Accept-Encoding": accept}) as r:
                assert r.status_code == 200
                return dict(r.headers), b"".join(r.iter_raw())

        plain_headers, plain = raw("identity")
        assert "content-encoding" not in plain_headers and len(_split_bundle(plain)) == 256
        for accept in ("gzip", "br, gzip;q=0.5", "*", "x-gzip", "deflate, GZIP;q=1.0"):
            headers, wire = raw(accept)
            assert headers["content-encoding"] == "gzip", accept
            assert "accept-encoding" in headers["vary"].lower()
            assert wire[:2] == b"\x1f\x8b" and len(wire) < len(plain) / 2
            assert gzip.decompress(wire) == plain  # the same bytes, decoded
        for accept in ("gzip;q=0", "identity, *;q=0", "br", "*;q=0, gzip;q=0"):
            headers, wire = raw(accept)
            assert "content-encoding" not in headers and wire == plain, accept
        # hash tiles are not compressed (random bytes), whatever the client accepts
        with c.stream("GET", f"/v1/logs/gz/{tile_path(0, 0)}", headers={"Accept-Encoding": "gzip"}) as r:
            assert "content-encoding" not in r.headers and len(b"".join(r.iter_raw())) == 8192
