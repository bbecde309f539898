#!/usr/bin/env python3
"""A stand-in for readyd's /v1 API, for looking at the dashboard before the engine answers.

It serves daemon/dashboard/ exactly as the daemon does (`/` -> index.html, `/assets/{file}`) and
answers the read and write endpoints the dashboard uses from an in-memory model of the example
organisation (examples/catalog, examples/standards). Rule outcomes come from a few hand-written
checks of the example repositories and stand-in data, so levels look plausible; exemptions,
tier requests, locks and approvals change them the way the real daemon does. It is a
development aid only: the browser test (tests/all/dashboard.rs) runs against the real daemon.

    python3 tests/browser/fixture_server.py [--port 8099] [--fail-status 503]

--fail-status makes every /v1 call answer that status, to look at the error states.
Needs PyYAML. Listens on 127.0.0.1 only.
"""

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.path.join(ROOT, "daemon", "dashboard")
EXAMPLES = os.path.join(ROOT, "examples")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
TOKENS = {
    "demo-payments-owner": ("pat", "owner:payments"),
    "demo-identity-owner": ("ines", "owner:identity"),
    "demo-approver": ("sam", "approver"),
    "demo-admin-token": ("root", "admin"),
    "demo-ci-token": ("ci-pipeline", "ci"),
}


def now():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Model:
    def __init__(self):
        self.entities = {}
        for path in sorted(glob.glob(os.path.join(EXAMPLES, "catalog", "*.yaml"))):
            for e in yaml.safe_load(open(path)) or []:
                e.setdefault("properties", {})
                e.setdefault("title", e["identifier"])
                self.entities[e["identifier"]] = e
        for doc in yaml.safe_load_all(open(os.path.join(EXAMPLES, "catalog", "backstage", "catalog-info.yaml"))):
            if not doc:
                continue
            md, spec = doc["metadata"], doc.get("spec", {})
            tier = str((md.get("labels") or {}).get("tier", "")).replace("tier-", "")
            props = dict(md.get("annotations") or {})
            props["lifecycle"] = spec.get("lifecycle")
            self.entities[md["name"]] = {
                "identifier": md["name"],
                "kind": spec.get("type", "service") if doc["kind"] == "Component" else "api",
                "title": md.get("title", md["name"]),
                "team": str(spec.get("owner", "")).replace("group:", "") or None,
                "tier": int(tier) if tier.isdigit() else None,
                "properties": props,
            }
        self.cards = [yaml.safe_load(open(p)) for p in sorted(glob.glob(os.path.join(EXAMPLES, "standards", "scorecards", "*.yaml")))]
        self.tiers = yaml.safe_load(open(os.path.join(EXAMPLES, "standards", "tiers.yaml")))
        self.initiatives = [yaml.safe_load(open(p)) for p in sorted(glob.glob(os.path.join(EXAMPLES, "standards", "initiatives", "*.yaml")))]
        self.oncall = json.load(open(os.path.join(EXAMPLES, "stand-in", "oncall.json")))
        self.prom = json.load(open(os.path.join(EXAMPLES, "stand-in", "prometheus.json")))
        self.exemptions, self.tier_requests, self.locks, self.history = {}, {}, {}, []
        self.degraded_since, self.seq, self.revision = {}, 0, 1
        self.started = now()
        self.results = {}
        self.evaluate_all(initial=True)

    # ---- evaluation -------------------------------------------------------------------------
    def repo(self, eid, *parts):
        return os.path.exists(os.path.join(EXAMPLES, "repos", eid, *parts))

    def facts(self, eid):
        out = {}
        if os.path.isdir(os.path.join(EXAMPLES, "repos", eid)):
            ci = "github" if self.repo(eid, ".github") else "gitlab" if self.repo(eid, ".gitlab-ci.yml") else None
            manifests = [m for m in ("Cargo.lock", "package.json", "go.mod", "pom.xml", "requirements.txt") if self.repo(eid, m)]
            out["repo-scan"] = {
                "has_readme": self.repo(eid, "README.md"),
                "ci": {"provider": ci},
                "has_tests": self.repo(eid, "tests"),
                "has_runbook": self.repo(eid, "docs", "runbook.md"),
                "has_codeowners": self.repo(eid, "CODEOWNERS"),
                "has_lockfile": any(self.repo(eid, m) for m in ("Cargo.lock", "package-lock.json")),
                "dependency_manifests": manifests,
                "license": "Apache-2.0" if self.repo(eid, "LICENSE") else None,
            }
        if eid in self.oncall:
            out["oncall"] = {"oncall_count": self.oncall[eid]["data"]["oncall"]["count"], "schedule": self.oncall[eid]["data"]["schedule"]["name"]}
        if eid in self.prom:
            out["prometheus"] = self.prom[eid]
        return out

    def applies(self, card, e):
        return card["identifier"] != "production-readiness" or e["kind"] in ("service", "api", "website")

    def rule_outcome(self, rule, e, f):
        rid, p = rule["identifier"], e["properties"]
        rs, oc, pr = f.get("repo-scan", {}), f.get("oncall"), f.get("prometheus")
        if rid == "has-oncall" and not (e.get("tier") and e["tier"] <= 2):
            return "not_applicable", None
        if rid == "recent-pentest" and e.get("tier") != 1:
            return "not_applicable", None
        if rid == "has-lockfile" and not rs.get("dependency_manifests"):
            return "not_applicable", None
        checks = {
            "has-owner": (bool(e.get("team")), "$team is missing"),
            "has-readme": (rs.get("has_readme") is True, "facts.repo-scan.has_readme is missing" if not rs else "facts.repo-scan.has_readme is false"),
            "has-ci": (bool(rs.get("ci", {}).get("provider")), "facts.repo-scan.ci.provider is empty"),
            "has-oncall": (bool(oc and oc["oncall_count"] > 0) or bool(p.get("oncall_exempt_reason")), "facts.oncall.oncall_count is missing"),
            "has-runbook": (str(p.get("runbook", "")).startswith("https://") or rs.get("has_runbook") is True, "runbook does not begin with https:// and facts.repo-scan.has_runbook is not true"),
            "has-tests": (rs.get("has_tests") is True, "facts.repo-scan.has_tests is not true"),
            "automated-rollback": (p.get("deploy_rollback") == "automated", f"deploy_rollback is {json.dumps(p.get('deploy_rollback'))}, expected \"automated\""),
            "not-deprecated": (p.get("lifecycle") not in ("deprecated", "experimental"), f"lifecycle is {p.get('lifecycle')}"),
            "has-codeowners": (rs.get("has_codeowners") is True, "facts.repo-scan.has_codeowners is not true"),
            "has-lockfile": (rs.get("has_lockfile") is True, "facts.repo-scan.has_lockfile is false"),
            "approved-license": (rs.get("license") in ("Apache-2.0", "MIT", "BSD-3-Clause"), f"facts.repo-scan.license is {json.dumps(rs.get('license'))}"),
            "recent-pentest": (str(p.get("last_pentest", "")) >= "2025-11-26", f"last_pentest is {p.get('last_pentest', 'missing')}"),
        }
        if rid == "slo-budget":
            if not pr:
                return "error", "plugin slo-budget: no facts from source prometheus"
            budget = 1 - (1 - pr["availability"]) / 0.001
            if budget <= 0:
                return "fail", f"error budget exhausted ({budget:.0%} left)"
            return ("warn", f"error budget low ({budget:.0%} left)") if budget < 0.25 else ("pass", None)
        if rid == "dependency-policy":
            if not rs:
                return "error", "plugin dependency-policy: no facts from source repo-scan"
            bad = int(hashlib.sha256(e["identifier"].encode()).hexdigest(), 16) % 4 == 0
            return ("fail", "openssl 0.10.38 is below the required >=0.10.55") if bad else ("pass", None)
        ok, why = checks[rid]
        return ("pass", None) if ok else ("fail", why)

    def exempted(self, eid, card, rule, t):
        for x in self.exemptions.values():
            if x["status"] == "approved" and x["entity"] == eid and x["scorecard"] == card and x.get("rule") in (None, rule) and x["until"] > iso(t):
                return True
        return False

    def evaluate(self, e, t):
        f, out = self.facts(e["identifier"]), []
        for card in self.cards:
            if not self.applies(card, e):
                continue
            levels = [l["title"] for l in card["levels"]]
            rules, passed_by_level = [], {l: True for l in levels}
            prev = {r["rule"]: r for r in (self.result(e["identifier"], card["identifier"]) or {}).get("rules", [])}
            for rule in card["rules"]:
                status, msg = self.rule_outcome(rule, e, f)
                if status not in ("pass", "not_applicable", "exempt") and self.exempted(e["identifier"], card["identifier"], rule["identifier"], t):
                    status, msg = "exempt", "covered by an approved exemption"
                if status not in ("pass", "warn", "exempt", "not_applicable"):
                    passed_by_level[rule["level"]] = False
                old = prev.get(rule["identifier"])
                changed = old["changed_at"] if old and old["status"] == status else iso(t)
                rules.append({"rule": rule["identifier"], "level": rule["level"], "status": status, "message": msg, "weight": rule.get("weight", 1), "evaluated_at": iso(t), "changed_at": changed})
            idx = 0
            for i in range(1, len(levels)):
                if all(passed_by_level[levels[k]] for k in range(1, i + 1)):
                    idx = i
                else:
                    break
            app = [r for r in rules if r["status"] != "not_applicable"]
            ok = [r for r in app if r["status"] in ("pass", "warn", "exempt")]
            wsum = sum(r["weight"] for r in app)
            out.append({
                "entity": e["identifier"], "scorecard": card["identifier"], "level": levels[idx], "level_index": idx,
                "percent": 100.0 * len(ok) / len(app) if app else 100.0,
                "score": 100.0 * sum(r["weight"] for r in ok) / wsum if wsum else 100.0,
                "rules": [{k: v for k, v in r.items() if v is not None} for r in rules], "evaluated_at": iso(t),
            })
        return out

    def result(self, eid, card):
        return next((r for r in self.results.get(eid, []) if r["scorecard"] == card), None)

    def required(self, e):
        pol = self.tiers["tiers"].get(e.get("tier")) if e.get("tier") else self.tiers.get("untiered")
        return (pol or {}).get("require", {})

    def evaluate_all(self, initial=False, only=None):
        t = now()
        for eid, e in self.entities.items():
            if only and eid != only:
                continue
            new = self.evaluate(e, t)
            for r in new:
                old = self.result(eid, r["scorecard"])
                if old is None or old["level_index"] != r["level_index"]:
                    at = self.started - dt.timedelta(days=9, hours=(hash(eid) % 50)) if initial else t
                    if initial and r["level_index"] > 0:
                        # A little made-up past so that the step chart has steps.
                        self.history.append({"entity": eid, "scorecard": r["scorecard"], "from": None, "to": "Basic", "from_index": None, "to_index": 0, "percent": 20.0, "at": iso(at)})
                        at = at + dt.timedelta(days=3)
                    lv = [l["title"] for l in next(c for c in self.cards if c["identifier"] == r["scorecard"])["levels"]]
                    frm = old["level"] if old else (lv[0] if initial and r["level_index"] > 0 else None)
                    self.history.append({"entity": eid, "scorecard": r["scorecard"], "from": frm, "to": r["level"], "from_index": lv.index(frm) if frm else None, "to_index": r["level_index"], "percent": r["percent"], "at": iso(at)})
            self.results[eid] = new
            miss = self.misses(e)
            if miss and eid not in self.degraded_since:
                self.degraded_since[eid] = iso(t - dt.timedelta(hours=26) if initial else t)
            elif not miss:
                self.degraded_since.pop(eid, None)

    def misses(self, e):
        out = []
        for card_id, need in self.required(e).items():
            card = next((c for c in self.cards if c["identifier"] == card_id), None)
            r = self.result(e["identifier"], card_id)
            if not card or not r:
                continue
            lv = [l["title"] for l in card["levels"]]
            if r["level_index"] < lv.index(need):
                blocking = [x for x in r["rules"] if lv.index(x["level"]) <= lv.index(need) and x["status"] in ("fail", "error")]
                out.append((card_id, r["level"], need, blocking))
        return out

    # ---- views --------------------------------------------------------------------------------
    def view(self, e):
        v = dict(e)
        v = {k: val for k, val in v.items() if val is not None}
        v.update({"origin": "catalog", "degraded": e["identifier"] in self.degraded_since})
        if e["identifier"] in self.degraded_since:
            v["degraded_since"] = self.degraded_since[e["identifier"]]
        if e["identifier"] in self.locks:
            v["lock"] = self.locks[e["identifier"]]
        return v

    def entity(self, eid):
        if eid not in self.entities:
            raise ApiError(404, "not_found", f"no entity `{eid}`")
        return self.entities[eid]

    def scorecard_view(self, card):
        lv = [l["title"] for l in card["levels"]]
        res = [r for rs in self.results.values() for r in rs if r["scorecard"] == card["identifier"]]
        rules = []
        for rule in card["rules"]:
            rr = [x for r in res for x in r["rules"] if x["rule"] == rule["identifier"] and x["status"] != "not_applicable"]
            rules.append({"identifier": rule["identifier"], "title": rule["title"], "level": rule["level"], "description": rule.get("description"), "weight": float(rule.get("weight", 1)),
                          "kind": f"plugin:{rule['check']['plugin']}" if "check" in rule else "query", "passing": sum(x["status"] in ("pass", "warn", "exempt") for x in rr), "applicable": len(rr)})
        return {"identifier": card["identifier"], "title": card["title"], "description": card.get("description"), "levels": lv,
                "distribution": [{"level": l, "count": sum(r["level_index"] == i for r in res)} for i, l in enumerate(lv)], "entities": len(res), "rules": rules}

    def gate(self, eid):
        e = self.entity(eid)
        reasons = []
        if eid in self.locks:
            lk = self.locks[eid]
            reasons.append(f"locked by {lk['locked_by']} since {lk['locked_at'][:16].replace('T', ' ')} UTC: {lk['reason']}")
        for card, at, need, blocking in self.misses(e):
            b = "; ".join(f"{x['rule']} ({x['status']}: {x['message']})" if x.get("message") else f"{x['rule']} ({x['status']})" for x in blocking) or "no rule result yet"
            reasons.append(f"{card} is at {at}, tier {e.get('tier') or 'none'} requires {need}; blocking: {b}")
        return {"entity": eid, "allowed": not reasons, "reasons": reasons, "evaluated_at": iso(now())}

    def tasks(self):
        out = []
        for eid, e in self.entities.items():
            for card, _, need, blocking in self.misses(e):
                for b in blocking:
                    created = dt.datetime.fromisoformat(b["changed_at"].replace("Z", "+00:00"))
                    due = created + dt.timedelta(days=7 if e.get("tier") == 1 else 14)
                    out.append({"id": f"t-{eid}-{card}-{b['rule']}", "entity": eid, "team": e.get("team"), "scorecard": card, "rule": b["rule"], "title": b["rule"].replace("-", " "),
                                "message": b.get("message"), "created_at": b["changed_at"], "due": iso(due), "status": "overdue" if due < now() else "open", "reminded": False})
        return out

    def initiative(self, ini):
        targeted = [e for e in self.entities.values() if e.get("tier") and e["tier"] <= 2]
        teams, nc = {}, []
        for e in targeted:
            failing = []
            for t in ini["targets"]:
                r = self.result(e["identifier"], t["scorecard"])
                if not r:
                    continue
                card = next(c for c in self.cards if c["identifier"] == t["scorecard"])
                lv = [l["title"] for l in card["levels"]]
                for x in r["rules"]:
                    want = x["rule"] in t.get("rules", []) or ("level" in t and lv.index(x["level"]) <= lv.index(t["level"]))
                    if want and x["status"] in ("fail", "error"):
                        failing.append({"scorecard": t["scorecard"], "rule": x["rule"], "status": x["status"], "message": x.get("message")})
            tm = teams.setdefault(e.get("team"), {"team": e.get("team"), "meeting": 0, "total": 0})
            tm["total"] += 1
            if failing:
                nc.append({"entity": e["identifier"], "title": e["title"], "team": e.get("team"), "failing": failing,
                           "open_exemptions": [{k: x.get(k) for k in ("id", "scorecard", "rule", "status", "until")} for x in self.exemptions.values() if x["entity"] == e["identifier"] and x["status"] in ("pending", "approved")],
                           "open_tasks": [{k: tk[k] for k in ("id", "scorecard", "rule", "status", "due")} for tk in self.tasks() if tk["entity"] == e["identifier"]]})
            else:
                tm["meeting"] += 1
        for tm in teams.values():
            tm["percent"] = 100.0 * tm["meeting"] / tm["total"] if tm["total"] else 100.0
        meeting = sum(t["meeting"] for t in teams.values())
        total = sum(t["total"] for t in teams.values())
        return {"identifier": ini["identifier"], "title": ini["title"], "description": ini.get("description"), "owner": ini.get("owner"), "deadline": str(ini.get("deadline")),
                "state": "done" if meeting == total else "at_risk" if meeting < total / 2 else "on_track", "overall": {"meeting": meeting, "total": total, "percent": 100.0 * meeting / total if total else 100.0},
                "teams": sorted(teams.values(), key=lambda t: str(t["team"])), "non_compliant": nc}

    def status(self):
        return {
            "version": "0.1.0-fixture", "ready": True, "now": iso(now()), "entities": len(self.entities), "scorecards": len(self.cards),
            "catalog": {"revision": self.revision, "loaded_at": iso(self.started), "last_error": None, "errors": []},
            "standards": {"revision": 3, "loaded_at": iso(self.started), "last_error": None, "errors": []},
            "plugins": [
                {"name": "repo-scan", "kind": "data-source", "version": "sha256:4f1c2a9be07d", "loaded_at": iso(self.started), "state": {"state": "active"}, "last_error": None, "calls": 42, "failures": 0},
                {"name": "oncall", "kind": "data-source", "version": "sha256:91aa03c4d2e1", "loaded_at": iso(self.started), "state": {"state": "active"}, "last_error": None, "calls": 40, "failures": 0},
                {"name": "prometheus", "kind": "data-source", "version": "sha256:0c77e1f9a3b2", "loaded_at": iso(self.started), "state": {"state": "active"}, "last_error": None, "calls": 40, "failures": 0},
                {"name": "slo-budget", "kind": "check", "version": "sha256:b3d19e6f0a42", "loaded_at": iso(self.started), "state": {"state": "active"}, "last_error": None, "calls": 300, "failures": 0},
                {"name": "dependency-policy", "kind": "check", "version": "sha256:7e2ab5c81d09", "loaded_at": iso(self.started), "state": {"state": "parked", "failures": 5, "since": iso(self.started)}, "last_error": "timed out after 500 ms", "calls": 120, "failures": 5},
            ],
            "degraded": len(self.degraded_since), "open_tasks": len(self.tasks()),
            "pending_exemptions": sum(x["status"] == "pending" for x in self.exemptions.values()),
            "pending_tier_requests": sum(x["status"] == "pending" for x in self.tier_requests.values()),
        }

    # ---- writes --------------------------------------------------------------------------------
    def next_id(self, prefix):
        self.seq += 1
        return f"{prefix}-{self.seq:04d}"

    def decide(self, store, rid, actor, verb, note, allowed_from):
        item = store.get(rid)
        if not item:
            raise ApiError(404, "not_found", f"no request `{rid}`")
        if actor[1] not in ("approver", "admin"):
            raise ApiError(403, "forbidden", f"role `{actor[1]}` may not decide requests")
        if verb != "revoke" and item["requested_by"] == actor[0]:
            raise ApiError(403, "forbidden", "a requester cannot decide their own request")
        if item["status"] not in allowed_from:
            raise ApiError(409, "conflict", f"`{rid}` is {item['status']}; cannot {verb}")
        item["status"] = {"approve": "approved", "deny": "denied", "revoke": "revoked"}[verb]
        item["history"].append({"actor": actor[0], "action": item["status"], "at": iso(now()), **({"note": note} if note else {})})
        return item

    def owner_check(self, actor, e):
        role = actor[1]
        if role == "admin" or role == f"owner:{e.get('team')}":
            return
        raise ApiError(403, "forbidden", f"role `{role}` may not act on `{e['identifier']}` (team {e.get('team')})")


MODEL = None
FAIL_STATUS = None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

    def send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def actor(self, required):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[7:]
            if tok not in TOKENS:
                raise ApiError(401, "unauthorized", "unknown token")
            return TOKENS[tok]
        if required:
            raise ApiError(401, "unauthorized", "this request needs a bearer token")
        return ("anonymous", "viewer")

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        url = urlparse(self.path)
        path = unquote(url.path)
        if method == "GET" and path == "/":
            return self.send(200, open(os.path.join(ASSETS, "index.html"), "rb").read(), TYPES[".html"])
        if method == "GET" and path.startswith("/assets/"):
            name = path[len("/assets/"):]
            full = os.path.join(ASSETS, name)
            if "/" in name or not os.path.isfile(full):
                return self.send(404, {"error": {"code": "not_found", "message": f"no asset `{name}`"}})
            return self.send(200, open(full, "rb").read(), TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))
        if not path.startswith("/v1/"):
            return self.send(404, {"error": {"code": "not_found", "message": f"no route {path}"}})
        try:
            if FAIL_STATUS:
                raise ApiError(FAIL_STATUS, "unavailable", "engine is starting")
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = {}
            if method == "POST":
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
            self.send(200, self.api(method, path[4:].strip("/").split("/"), q, body))
        except ApiError as err:
            self.send(err.status, {"error": {"code": err.code, "message": err.message}})

    def api(self, method, parts, q, body):
        m = MODEL
        actor = self.actor(method == "POST")
        head = parts[0]
        if method == "GET":
            if parts == ["status"]:
                return m.status()
            if parts == ["entities"]:
                es = [e for e in m.entities.values() if (not q.get("kind") or e["kind"] == q["kind"]) and (not q.get("team") or e.get("team") == q["team"]) and (not q.get("tier") or e.get("tier") == int(q["tier"]))]
                return [m.view(e) for e in es]
            if head == "entities" and len(parts) == 2:
                return m.view(m.entity(parts[1]))
            if head == "entities" and len(parts) == 3:
                e = m.entity(parts[1])
                if parts[2] == "scores":
                    return m.results.get(e["identifier"], [])
                if parts[2] == "facts":
                    return {s: {"source": s, "facts": f, "collected_at": iso(now() - dt.timedelta(minutes=3)), "plugin_version": "sha256:4f1c2a9be07d"} for s, f in m.facts(e["identifier"]).items()}
                if parts[2] == "history":
                    return [h for h in m.history if h["entity"] == e["identifier"] and (not q.get("scorecard") or h["scorecard"] == q["scorecard"])]
            if parts == ["scorecards"]:
                return [m.scorecard_view(c) for c in m.cards]
            if head == "scorecards" and len(parts) == 2:
                c = next((c for c in m.cards if c["identifier"] == parts[1]), None)
                if not c:
                    raise ApiError(404, "not_found", f"no scorecard `{parts[1]}`")
                return m.scorecard_view(c)
            if parts == ["scores"]:
                out = []
                for eid, rs in m.results.items():
                    e = m.entities[eid]
                    if q.get("team") and e.get("team") != q["team"] or q.get("tier") and e.get("tier") != int(q["tier"]):
                        continue
                    out += [r for r in rs if not q.get("scorecard") or r["scorecard"] == q["scorecard"]]
                return out
            if head == "gate":
                return m.gate(parts[1])
            if parts == ["exemptions"]:
                return [x for x in m.exemptions.values() if not q.get("status") or x["status"] == q["status"]]
            if head == "exemptions" and len(parts) == 2:
                if parts[1] not in m.exemptions:
                    raise ApiError(404, "not_found", f"no exemption `{parts[1]}`")
                return m.exemptions[parts[1]]
            if parts == ["tier-requests"]:
                return [x for x in m.tier_requests.values() if not q.get("status") or x["status"] == q["status"]]
            if parts == ["tasks"]:
                return [t for t in m.tasks() if (not q.get("team") or t["team"] == q["team"]) and (not q.get("entity") or t["entity"] == q["entity"]) and (not q.get("status") or t["status"] == q["status"])]
            if parts == ["initiatives"]:
                return [m.initiative(i) for i in m.initiatives]
            if head == "initiatives" and len(parts) == 2:
                i = next((i for i in m.initiatives if i["identifier"] == parts[1]), None)
                if not i:
                    raise ApiError(404, "not_found", f"no initiative `{parts[1]}`")
                return m.initiative(i)
        else:
            if parts == ["exemptions"]:
                e = m.entity(body.get("entity", ""))
                m.owner_check(actor, e)
                if not str(body.get("reason", "")).strip():
                    raise ApiError(400, "bad_request", "reason must not be empty")
                if body.get("until", "") <= iso(now()):
                    raise ApiError(400, "bad_request", "until must be in the future")
                x = {"id": m.next_id("ex"), "entity": e["identifier"], "scorecard": body["scorecard"], "reason": body["reason"], "until": body["until"],
                     "requested_by": actor[0], "requested_at": iso(now()), "status": "pending", "history": [{"actor": actor[0], "action": "requested", "at": iso(now())}]}
                if body.get("rule"):
                    x["rule"] = body["rule"]
                m.exemptions[x["id"]] = x
                return x
            if head == "exemptions" and len(parts) == 3:
                x = m.decide(m.exemptions, parts[1], actor, parts[2], body.get("note"), ["approved"] if parts[2] == "revoke" else ["pending"])
                m.evaluate_all(only=x["entity"])
                return x
            if parts == ["tier-requests"]:
                e = m.entity(body.get("entity", ""))
                m.owner_check(actor, e)
                x = {"id": m.next_id("tr"), "entity": e["identifier"], "from": e.get("tier"), "to": body.get("to"), "reason": body.get("reason", ""),
                     "requested_by": actor[0], "requested_at": iso(now()), "status": "pending", "history": []}
                m.tier_requests[x["id"]] = x
                return x
            if head == "tier-requests" and len(parts) == 3:
                x = m.decide(m.tier_requests, parts[1], actor, parts[2], body.get("note"), ["pending"])
                if x["status"] == "approved":
                    m.entities[x["entity"]]["tier"] = x["to"]
                    m.evaluate_all(only=x["entity"])
                return x
            if head == "entities" and len(parts) == 3:
                e = m.entity(parts[1])
                m.owner_check(actor, e)
                if parts[2] == "lock":
                    m.locks[e["identifier"]] = {"entity": e["identifier"], "reason": body.get("reason", ""), "locked_by": actor[0], "locked_at": iso(now())}
                    return m.locks[e["identifier"]]
                if parts[2] == "unlock":
                    m.locks.pop(e["identifier"], None)
                    return {}
                if parts[2] == "refresh":
                    m.evaluate_all(only=e["identifier"])
                    return {"entity": e["identifier"], "sources": [{"source": s, "ok": True} for s in m.facts(e["identifier"])], "scores": m.results[e["identifier"]]}
                if parts[2] == "nudge":
                    return {"sent": 1}
        raise ApiError(404, "not_found", f"no route /v1/{'/'.join(parts)}")


def main():
    global MODEL, FAIL_STATUS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--fail-status", type=int, default=None)
    args = ap.parse_args()
    FAIL_STATUS = args.fail_status
    MODEL = Model()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"fixture API and dashboard on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
