#!/usr/bin/env python3
"""Loopback embedding/rerank server for spec/knowledge_providers_spec.lua.

Usage: embed_server.py PORTFILE. Binds 127.0.0.1 on a free port, writes the port to PORTFILE and
serves until killed. Every request needs `Authorization: Bearer test-key` (else 401).

Embeddings are a toy bag of words: each lower-cased word [a-z0-9]+ adds 3 to the coordinate
md5(word) mod dims (so texts sharing words have a positive cosine; the vectors are not
normalized, the client must do it). Routes:
  POST /openai/embeddings       OpenAI shape {data: [{index, embedding}], model}, items reversed
                                (clients must use `index`); dims = request `dimensions` or 1536
  POST /cohere/embed            Cohere shape {embeddings: [[...]]}; dims 1536
  POST /cohere1024/embed        the same with 1024 dimensions
  POST /openai-500/embeddings   500 {"error": "upstream broke"}
  POST /openai-bad/embeddings   200 with a malformed JSON body
  POST /openai-slow/embeddings  sleeps 3 s
  POST /openai-short/embeddings 200, one embedding fewer than texts
  POST /cohere/rerank           {results: [{index, relevance_score}]}, score = shared words /
                                query words, results sorted by score (not by index)
  POST /cohere-500/rerank       500
  GET  /requests                the requests seen so far [{path, auth, body}]
  POST /reset                   forgets them
"""
import hashlib
import json
import re
import threading
import time

import loopback

SEEN = []
LOCK = threading.Lock()


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def embed(text, dims):
    v = [0.0] * dims
    for w in words(text):
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % dims] += 3.0
    if not any(v):
        v[0] = 1.0
    return v


class Handler(loopback.Handler):
    def handle_any(self):
        p = self.path
        raw = self.body()
        if p == "/requests":
            with LOCK:
                return self.send(200, json.dumps(SEEN))
        if p == "/reset":
            with LOCK:
                SEEN.clear()
            return self.send(200, "{}")
        auth = self.headers.get("Authorization")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with LOCK:
            SEEN.append({"path": p, "auth": auth, "body": body})
        if auth != "Bearer test-key":
            return self.send(401, json.dumps({"error": "bad key"}))
        if p == "/openai/embeddings":
            dims = body.get("dimensions") or 1536
            data = [{"object": "embedding", "index": i, "embedding": embed(t, dims)}
                    for i, t in enumerate(body["input"])]
            data.reverse()
            return self.send(200, json.dumps({"data": data, "model": body["model"]}))
        if p in ("/cohere/embed", "/cohere1024/embed"):
            dims = 1024 if p.startswith("/cohere1024") else 1536
            vecs = [embed(t, dims) for t in body["texts"]]
            return self.send(200, json.dumps({"id": "x", "embeddings": vecs}))
        if p == "/openai-500/embeddings" or p == "/cohere-500/rerank":
            return self.send(500, json.dumps({"error": "upstream broke"}))
        if p == "/openai-bad/embeddings":
            return self.send(200, '{"data": [{"index": 0, "embedding": [0.1, ')
        if p == "/openai-slow/embeddings":
            time.sleep(3)
            return self.send(200, "{}")
        if p == "/openai-short/embeddings":
            data = [{"index": i, "embedding": embed(t, 1536)}
                    for i, t in enumerate(body["input"][1:])]
            return self.send(200, json.dumps({"data": data}))
        if p == "/cohere/rerank":
            q = set(words(body["query"]))
            res = []
            for i, d in enumerate(body["documents"]):
                dw = set(words(d))
                res.append({"index": i, "relevance_score": len(q & dw) / max(1, len(q))})
            res.sort(key=lambda r: -r["relevance_score"])
            return self.send(200, json.dumps({"results": res[: body["top_n"]]}))
        return self.send(404, "not found", "text/plain")

    do_GET = do_POST = handle_any


if __name__ == "__main__":
    loopback.serve(Handler)
