#!/usr/bin/env python3
"""Posts sample events (API Gateway v2 JSON files) to a running webhooks-local, with their
exact body and headers, and prints each status and response.

usage: python3 events/post.py [--url http://127.0.0.1:3000] events/fulfilment/*.json
"""
import argparse
import base64
import json
import sys
import urllib.error
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:3000")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    failed = 0
    for name in args.files:
        event = json.load(open(name, encoding="utf-8"))
        if "rawPath" not in event:
            print(f"{name}: not an API Gateway v2 event, skipped")
            continue
        body = event.get("body") or ""
        data = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        query = event.get("rawQueryString") or ""
        url = args.url + event["rawPath"] + ("?" + query if query else "")
        headers = {k: v for k, v in event.get("headers", {}).items() if k not in ("host", "content-length")}
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        failed += status >= 300
        print(f"{status} {name} {text}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
