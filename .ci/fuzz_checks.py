"""Schemathesis hooks and checks for `.ci/fuzz` (schemathesis 4.x).

Loaded through SCHEMATHESIS_HOOKS. Reads:
  CANOPY_FUZZ_URL   the server under test (http://127.0.0.1:PORT)
  CANOPY_FUZZ_IDS   comma-separated ids of workspaces seeded before the run
  CANOPY_FUZZ_TOKEN the workspace token of the seeded agent

Checks (pass them to --checks):
  json_error_body        every 4xx/5xx answers `Content-Type: application/json` with a JSON
                         object whose `error` is a string
  nothing_changes_on_refusal
                         a request answered 4xx changed nothing: the stream head (`head_seq` of
                         /health: no event was appended) and, for non-GET requests, the state
                         that changes without events (global secrets, the seeded workspaces'
                         secrets, the viewport, the workspace list) are the same before and after.
                         The run uses one worker, so requests are sequential and this is exact.

Hooks steer generated UUIDs (path `id`s, `X-Workspace-ID` and id fields of bodies) to the
seeded workspaces two times in three, so operations reach their handlers' logic instead of
stopping at 404, and send the seeded agent's token with one case in four and a wrong token with
another (the server runs open, so the token paths are reached only this way).
"""

import hashlib
import json
import os
import uuid
import urllib.request

import schemathesis

BASE = os.environ.get("CANOPY_FUZZ_URL", "http://127.0.0.1:8080").rstrip("/")
SEEDED = [i for i in os.environ.get("CANOPY_FUZZ_IDS", "").split(",") if i]
TOKEN = os.environ.get("CANOPY_FUZZ_TOKEN", "")
ID_FIELDS = {
    "id",
    "workspace_id",
    "parent_id",
    "target_workspace_id",
    "caller_id",
    "target_id",
    "source_id",
}


def _steer(value):
    """A generated UUID becomes a seeded id two times in three (decided by the value itself, so
    shrinking and replay see the same substitution)."""
    if not SEEDED or not isinstance(value, str):
        return value
    try:
        uuid.UUID(value)
    except ValueError:
        return value
    digest = hashlib.sha256(value.encode()).digest()
    if digest[0] % 3 == 0:
        return value
    return SEEDED[digest[1] % len(SEEDED)]


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if path_parameters:
        for name in ("id", "workspace_id"):
            if name in path_parameters:
                path_parameters[name] = _steer(path_parameters[name])
    return path_parameters


@schemathesis.hook
def map_headers(ctx, headers):
    if headers and "X-Workspace-ID" in headers:
        headers["X-Workspace-ID"] = _steer(headers["X-Workspace-ID"])
    return headers


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict):
        for name in ID_FIELDS & body.keys():
            body[name] = _steer(body[name])
    return body


@schemathesis.hook
def map_case(ctx, case):
    headers = dict(case.headers or {})
    if any(k.lower() == "authorization" for k in headers):
        return case
    seed = f"{case.method} {case.formatted_path} {case.query} {case.body!r}"
    pick = hashlib.sha256(seed.encode()).digest()[2] % 4
    if pick == 0 and TOKEN:
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif pick == 1:
        headers["Authorization"] = "Bearer fuzz-not-a-token"
    else:
        return case
    case.headers = headers
    return case


def _get(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as response:
        return json.loads(response.read())


def _snapshot(full):
    state = {"head_seq": _get("/health").get("head_seq")}
    if full:
        state["global_secrets"] = _get("/settings/secrets")
        state["viewport"] = _get("/canvas/viewport")
        state["workspaces"] = _get("/workspaces")
        for ws in SEEDED:
            try:
                state["secrets:" + ws] = _get(f"/workspaces/{ws}/secrets")
            except urllib.error.HTTPError as e:  # removed by the fuzz: 404/410
                state["secrets:" + ws] = e.code
    return state


_before = {}


@schemathesis.hook
def before_call(ctx, case, kwargs):
    full = case.method.upper() != "GET"
    _before["state"] = _snapshot(full)
    _before["full"] = full


def _difference(before, after):
    changed = [key for key in before if before[key] != after.get(key)]
    return ", ".join(
        f"{key}: {json.dumps(before[key])[:300]} -> {json.dumps(after.get(key))[:300]}"
        for key in changed
    )


@schemathesis.check
def nothing_changes_on_refusal(ctx, response, case):
    if not 400 <= response.status_code < 500 or "state" not in _before:
        return None
    after = _snapshot(_before["full"])
    diff = _difference(_before["state"], after)
    if diff:
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {response.status_code} "
            f"but changed state: {diff}"
        )
    return None


@schemathesis.check
def json_error_body(ctx, response, case):
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/json"):
        raise AssertionError(
            f"{response.status_code} error with Content-Type {content_type!r}: "
            f"{response.content[:200]!r}"
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} error body is not JSON: {response.content[:200]!r}"
        )
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        raise AssertionError(
            f'{response.status_code} error body has no string "error": {response.content[:200]!r}'
        )
    return None
