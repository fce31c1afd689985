#!/usr/bin/env python3
"""Loopback HTTP server for the http-request and llm specs.

Usage: http_server.py PORTFILE. Binds 127.0.0.1 on a free port, writes the port to PORTFILE and
serves until killed. Routes:
  GET  /json                      200 application/json {"ok": true, "path", "query"}
  ANY  /echo                      200 application/json {"method", "headers", "body"}
  ANY  /status/<code>             <code> text/plain "status <code> body"
  GET  /slow                      sleeps 3 s, then 200
  GET  /badjson                   200 application/json with a malformed body
  GET  /big                       200 text/plain, 3 MiB
  POST /v1/chat/completions       OpenAI-compatible answer echoing the last user message
  POST /gemini/models/<m>:generateContent   Gemini answer echoing the prompt
  POST /fail/chat/completions     500 {"error": "upstream broke"}
  POST /slowllm/chat/completions  sleeps 3 s
"""
import json
import time
from urllib.parse import urlparse

import loopback


class Handler(loopback.Handler):
    EXTRA_HEADERS = {"X-Test": "yes"}

    def handle_any(self):
        u = urlparse(self.path)
        p = u.path
        raw = self.body()
        if p == "/json":
            return self.send(200, json.dumps({"ok": True, "path": p, "query": u.query}))
        if p == "/echo":
            return self.send(200, json.dumps({"method": self.command,
                                              "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": raw, "query": u.query}))
        if p.startswith("/status/"):
            code = int(p.split("/")[2])
            return self.send(code, "status %d body" % code, "text/plain")
        if p == "/slow" or p == "/slowllm/chat/completions":
            time.sleep(3)
            return self.send(200, "{}")
        if p == "/badjson":
            return self.send(200, "{not json")
        if p == "/big":
            return self.send(200, "x" * (3 * 1024 * 1024), "text/plain")
        if p == "/v1/chat/completions":
            req = json.loads(raw)
            user = [m for m in req["messages"] if m["role"] == "user"][-1]["content"]
            system = [m["content"] for m in req["messages"] if m["role"] == "system"]
            ans = {"choices": [{"message": {"role": "assistant",
                                            "content": "echo: " + user}}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                   "seen": {"auth": self.headers.get("Authorization"), "model": req["model"],
                            "system": system, "max_tokens": req["max_tokens"]}}
            return self.send(200, json.dumps(ans))
        if p.startswith("/gemini/models/") and p.endswith(":generateContent"):
            req = json.loads(raw)
            text = req["contents"][0]["parts"][0]["text"]
            if self.headers.get("x-goog-api-key") != "gem-key" or "key=" in u.query:
                return self.send(401, json.dumps({"error": "bad key"}))
            ans = {"candidates": [{"content": {"parts": [{"text": "gemini: " + text}]}}],
                   "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2,
                                     "totalTokenCount": 3}}
            return self.send(200, json.dumps(ans))
        if p == "/fail/chat/completions":
            return self.send(500, json.dumps({"error": "upstream broke"}))
        return self.send(404, "not found", "text/plain")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


if __name__ == "__main__":
    loopback.serve(Handler)
