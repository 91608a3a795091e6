"""ocpi-admin: manage partners and data through the running platform's admin API.

It never touches MongoDB: everything goes through the gateway, which validates and publishes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from services.admin import price

# Modules whose objects of ours an operator loads from a file: POST /admin/<module>.
LOADABLE = {"locations": "2.1.1 Locations", "tariffs": "2.1.1 Tariffs", "tokens": "2.1.1 Tokens"}


class AdminError(Exception):
    pass


class AdminClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
        except OSError as exc:
            raise AdminError(f"cannot reach the admin API at {self.url}: {exc}") from exc
        if payload.get("status_code") != 1000:
            raise AdminError(f"{payload.get('status_code')}: {payload.get('status_message')}")
        return payload.get("data")


def _print_partner(p: dict[str, Any]) -> None:
    print(f"{p['name']}  id={p['id']}  role={p['role']}  party={p['country_code']}/{p['party_id']}")
    print(f"  status={p['status']}  sync={p['sync_state']} {p.get('sync_detail') or ''}".rstrip())
    if p.get("versions_url"):
        print(f"  versions={p['versions_url']}  version={p.get('version')}")
    if p.get("token_a_expires_at"):
        state = "EXPIRED since" if p.get("token_a_expired") else "valid until"
        print(f"  TOKEN_A {state} {p['token_a_expires_at']}")
    for identifier, url in sorted((p.get("endpoints") or {}).items()):
        print(f"  {identifier:<12} {url}")


def print_disputes(disputes: list[dict[str, Any]]) -> None:
    """One line per disputed CDR: who, which, when, their total, ours, the difference."""
    for d in disputes:
        ours, difference = d.get("ours") or "-", d.get("difference") or "-"
        print(
            f"{d['country_code']}/{d['party_id']}/{d['cdr_id']}  received={d['received_at']}  "
            f"theirs={d['theirs']} {d['currency']}  ours={ours}  difference={difference}"
        )
        if d.get("reason"):
            print(f"  {d['reason']}")
    if not disputes:
        print("no disputed CDRs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocpi-admin", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("OCPI_ADMIN_URL", "http://127.0.0.1:8081"))
    parser.add_argument(
        "--token",
        default=os.environ.get("OCPI_ADMIN_TOKEN", ""),
        help="the admin token (default: OCPI_ADMIN_TOKEN); `make run` keeps its own in .data/admin-token",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    groups = parser.add_subparsers(dest="group", required=True)

    partner = groups.add_parser("partner").add_subparsers(dest="command", required=True)
    add = partner.add_parser("add", help="create a partner and print the TOKEN_A to hand over")
    add.add_argument("--name", required=True)
    add.add_argument("--country-code", required=True)
    add.add_argument("--party-id", required=True)
    add.add_argument("--role", required=True, choices=["CPO", "EMSP"])
    add.add_argument("--party", action="append", default=[], help="extra CC/PID a hub writes for")
    shared = "allow a party another partner owns already (both may then write for it)"
    add.add_argument("--shared-party", action="store_true", help=shared)
    register = partner.add_parser(
        "register", help="register with a partner from its versions URL and TOKEN_A"
    )
    register.add_argument("--versions-url", required=True)
    register.add_argument("--token", dest="token_a", required=True)
    register.add_argument("--name")
    register.add_argument("--role", choices=["CPO", "EMSP"])
    register.add_argument(
        "--party",
        action="append",
        required=True,
        help="CC/PID the partner may write for (repeat for a hub); its credentials must name one of them",
    )
    register.add_argument("--shared-party", action="store_true", help=shared)
    partner.add_parser("list", help="partners with connection and sync status and endpoints")
    for name, text in (
        ("remove", "unregister and forget a partner"),
        ("rotate", "credentials PUT: new tokens both ways"),
        ("sync", "pull the partner's objects again (every module it offers, or --module)"),
        ("token", "a new TOKEN_A for a partner that has not registered (the old one stops working)"),
    ):
        sub = partner.add_parser(name, help=text)
        sub.add_argument("partner", help="name or id")
        if name == "sync":
            sub.add_argument("--module", choices=list(LOADABLE), help="only this module")

    for module, what in LOADABLE.items():
        commands = groups.add_parser(module).add_subparsers(dest="command", required=True)
        load = commands.add_parser("load", help=f"load our own {module} from a JSON file (a list of {what})")
        load.add_argument("file")

    cdrs = groups.add_parser("cdrs").add_subparsers(dest="command", required=True)
    disputes = cdrs.add_parser("disputes", help="received CDRs whose price we dispute, newest first")
    disputes.add_argument("--limit", type=int, default=100, help="at most this many (1 to 1000)")
    price.add_price_command(groups)
    return parser


def _parties(given: list[str]) -> list[dict[str, str]]:
    """CC/PID strings as party objects."""
    parties = []
    for text in given:
        country_code, _, party_id = text.partition("/")
        if not party_id:
            raise AdminError(f"--party {text!r}: expected COUNTRY_CODE/PARTY_ID, e.g. DE/ACM")
        parties.append({"country_code": country_code, "party_id": party_id})
    return parties


def run(argv: list[str] | None = None) -> Any:
    args = _parser().parse_args(argv)
    if not args.token:
        raise AdminError("no admin token: set OCPI_ADMIN_TOKEN or pass --token")
    client = AdminClient(args.url, args.token)
    if args.group in LOADABLE:
        with open(args.file, "rb") as handle:
            return client.call("POST", f"/admin/{args.group}", raw=handle.read())
    if args.group == "cdrs" and args.command == "disputes":
        return client.call("GET", f"/admin/cdrs/disputes?limit={args.limit}")
    if args.command == "add":
        parties = _parties(args.party)
        return client.call(
            "POST",
            "/admin/partners",
            {
                "name": args.name,
                "country_code": args.country_code,
                "party_id": args.party_id,
                "role": args.role,
                "extra_parties": parties,
                "shared_party": args.shared_party,
            },
        )
    if args.command == "register":
        body = {
            "versions_url": args.versions_url,
            "token": args.token_a,
            "parties": _parties(args.party),
            "shared_party": args.shared_party,
        }
        body.update({k: v for k, v in (("name", args.name), ("role", args.role)) if v})
        return client.call("POST", "/admin/registrations", body)
    if args.command == "list":
        return client.call("GET", "/admin/partners")
    # One path segment whatever the name holds ('/', '?', '#', '%'): it names that partner only (L11).
    partner = urllib.parse.quote(args.partner, safe="")
    if args.command == "remove":
        return client.call("DELETE", f"/admin/partners/{partner}")
    query = f"?module={args.module}" if args.command == "sync" and args.module else ""
    return client.call("POST", f"/admin/partners/{partner}/{args.command}{query}")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.group == "price":  # offline: needs no admin URL or token
        raise SystemExit(price.run(args))
    try:
        result = run(argv)
    except AdminError as exc:
        print(f"ocpi-admin: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    if args.json or args.group in LOADABLE or args.command in ("remove", "sync"):
        print(json.dumps(result, indent=2))
    elif args.command in ("add", "token"):
        _print_partner(result["partner"])
        print(f"\nHand these to {result['partner']['name']} over a secure channel:")
        print(f"  versions URL: {result['versions_url']}\n  TOKEN_A:      {result['token_a']}")
    elif args.group == "cdrs":
        print_disputes(result)
    elif args.command == "list":
        for partner in result:
            _print_partner(partner)
        if not result:
            print("no partners")
    else:
        _print_partner(result)
