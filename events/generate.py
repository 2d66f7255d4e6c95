#!/usr/bin/env python3
"""Writes the API Gateway v2 (HTTP API) sample events in events/<source>/ from the provider
payloads in shared/fixtures/<source>/, signed with the development credentials that
`webhooks-local` accepts with no configuration (see README, "Development credentials").

Run from the repository root: python3 events/generate.py
The bodies are compact JSON; signatures cover exactly those bytes. A fixture of
shared/fixtures/<source>/documented/ (the providers' own documented deliveries) becomes
events/<source>/documented_<name>.json, beside the others, so `events/*/*.json` posts them all.
"""
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "shared" / "fixtures"
EVENTS = ROOT / "events"

DEV = {
    "fulfilment": "dev-fulfilment-secret",
    "pancake": "dev-pancake-key",
    "pancake_pos": "dev-pancake-pos-key",
    "abaha": "dev-abaha-token",
    "invoice": "dev-invoice-secret",
}


def fulfilment_headers(name, body):
    sig = hashlib.sha256(body + DEV["fulfilment"].encode()).hexdigest()
    # A stable delivery id per sample, so re-posting a sample is a redelivery.
    delivery = str(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    return {"x-event-signature": sig, "x-event-delivery": delivery}


def pancake_headers(name, body):
    return {"x-api-key": DEV["pancake"]}


def pancake_pos_headers(name, body):
    return {"x-webhook-secret": DEV["pancake_pos"]}


def abaha_headers(name, body):
    return {"x-abaha-token": DEV["abaha"]}


def invoice_headers(name, body):
    return {"x-signature": hmac.new(DEV["invoice"].encode(), body, hashlib.sha256).hexdigest()}


SOURCES = {
    # fixture folder: (route, events/ folder, header function)
    "fulfilment": ("/api/v1/fulfilment/webhook", "fulfilment", fulfilment_headers),
    "pancake": ("/api/v1/pancake/webhook", "pancake", pancake_headers),
    "pancake_pos": ("/api/v1/pancake-pos/webhook", "pancake-pos", pancake_pos_headers),
    "abaha": ("/api/v1/abaha/webhook", "abaha", abaha_headers),
    "invoice": ("/callback/update-invoice", "invoice", invoice_headers),
}


def api_gateway_v2_event(route, name, body, extra_headers):
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "host": "localhost:3000",
        "user-agent": "sample-provider/1.0",
    }
    headers.update(extra_headers)
    request_id = hashlib.sha256((route + name).encode()).hexdigest()[:16]
    return {
        "version": "2.0",
        "routeKey": f"POST {route}",
        "rawPath": route,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": "POST",
                "path": route,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "sample-provider/1.0",
            },
            "requestId": request_id,
            "routeKey": f"POST {route}",
            "stage": "$default",
            "time": "05/Sep/2025:10:45:00 +0000",
            "timeEpoch": 1757069100000,
        },
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }


def main():
    written = 0
    for fixture_dir, (route, out_dir, header_fn) in SOURCES.items():
        src = FIXTURES / fixture_dir
        if not src.is_dir():
            continue
        out = EVENTS / out_dir
        out.mkdir(parents=True, exist_ok=True)
        paths = [(p.stem, p) for p in sorted(src.glob("*.json"))]
        paths += [("documented_" + p.stem, p) for p in sorted(src.glob("documented/*.json"))]
        for stem, path in paths:
            payload = json.loads(path.read_text(encoding="utf-8"))
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            event = api_gateway_v2_event(route, stem, body, header_fn(stem, body))
            (out / f"{stem}.json").write_text(json.dumps(event, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            written += 1
    print(f"wrote {written} events")


if __name__ == "__main__":
    main()
