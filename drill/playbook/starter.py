"""The commented starter playbooks `drill init` writes; tests check that they validate.

`starter_playbook(name)` is the template for your own systems: its targets are placeholders.
`lab_starter_playbook(name, port_base)` is aimed at the embedded lab (`drill lab up`): it names
the lab's ports literally and runs as it is, `drill run --yes` included. Both start with the
yaml-language-server line naming `drill.schema.json` (resolved relative to the playbook), and
their comments name the file they are written to.
"""

from __future__ import annotations

import shlex

from drill.lab.lab import DEFAULT_PORT_BASE, PORTS, lab_urls

SCHEMA_LINE = "# yaml-language-server: $schema=drill.schema.json"


def check_name(name: str) -> None:
    """ValueError when `name` cannot be shown in a YAML comment (a control character would end it)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("the file name holds a control character")


def starter_playbook(name: str) -> str:
    """The general starter, its comments naming `name`: it validates and plans, but its targets
    are placeholders for your own systems."""
    check_name(name)
    file = shlex.quote(name)
    return f"""\
{SCHEMA_LINE}
# A drill playbook: what to watch, the recovery targets, who to page, and what to do.
# Its targets are PLACEHOLDERS (127.0.0.1:8080, 127.0.0.1:9000, ${{env:PAGER_URL}}, ${{env:DATABASE_DSN}}):
# it validates and plans as it is, but it runs only once they name your own systems.
# To try a whole drill first, against drill's embedded lab: drill lab up && drill init --lab my-drill.yaml
# Check this file with `drill validate {file}`, see the plan with `drill plan {file}`.
# Editor help: run `drill schema > drill.schema.json` in this file's folder (the first line names it).
{_STARTER_BODY}"""


_STARTER_BODY = """\
apiVersion: drill/v1
kind: Playbook

metadata:
  name: my-first-drill              # a slug: letters, digits, '-', '.', '_'
  owner: dr-team@example.com        # who is accountable for the drill
  description: Fail the web tier over to the standby and time the recovery.
  quarter: 2026-Q4
  environment: staging              # shown when `drill run` asks before changing anything
  test_type: functional             # tabletop | functional | full-scale | switchover
  objectives:
    - Show the web tier recovers within its 5 minute RTO.
  success_criteria:
    - Every tier-0 asset is back up within its RTO.
  participants:
    - {name: Ana Silva, role: drill-lead}
    - {name: Ben Okafor, role: independent-observer}

settings:
  interval: 1s                      # how often each probe runs (a probe may override it)
  timeout: 1s                       # deadline of one probe run
  fall: 2                           # failures in a row before an asset counts as down
  rise: 2                           # successes in a row before it counts as up again

tiers:                              # list order is priority: the first recovers first
  - {name: tier-0, rto: 5m, rpo: 0, description: customer-facing}
  - {name: tier-1, rto: 30m, rpo: 5m}

contacts:
  chains:
    web-oncall:
      respond_within: 15m           # the chain's target for a first acknowledgement
      contacts:
        - {name: Ana Silva, via: webhook, url: "${env:PAGER_URL}", ack_within: 5m}        # placeholder
        - {name: Ben Okafor, via: email, to: ben@example.com, ack_within: 10m}

assets:
  - id: web
    tier: tier-0
    owner: web-team
    depends_on: [database]
    contact_chain: web-oncall
    # An objective nothing measures never passes silently: waive it, with the reason the report shows.
    waive: {rpo: "stateless: its data lives in the database, whose canary measures the loss"}
    probes:
      - name: health                # placeholder: your service's health URL
        http: {url: "http://127.0.0.1:8080/healthz", expect_status: 200}
  - id: database
    tier: tier-0
    contact_chain: web-oncall
    probes:
      - name: canary                # writes a numbered row every interval, reads back what survived: the RPO
        postgres: {dsn: "${env:DATABASE_DSN}", canary: true}
        interval: 500ms

scenario:
  - {name: declare the disaster, mark: disaster}
  - name: stop the primary          # placeholder: the command that really injects the failure
    action: {command: {argv: [echo, "stop the primary here"]}}
  - name: wait for detection
    wait_for: {asset: web, state: down, within: 2m}
  - name: fail over                 # placeholder: your failover endpoint
    action: {http: {url: "http://127.0.0.1:9000/failover", method: POST}}
    timeout: 30s
    retry: {attempts: 3, wait: 5s}
  - name: wait for recovery
    wait_for: {all_assets: true, state: up, within: 10m}
  - name: check the status page     # a person answers it: `drill run` must be interactive (or --auto-confirm)
    manual: Does the status page show the maintenance banner?
    timeout: 10m

stop_conditions:                    # abort (and roll back) when something stays down too long
  - {name: database outage, asset: database, down_for: 15m}

rollback:
  - name: fail back                 # placeholder: your fail-back endpoint
    action: {http: {url: "http://127.0.0.1:9000/failback", method: POST}}
"""

STARTER_PLAYBOOK = starter_playbook("playbook.yaml")


def lab_starter_playbook(name: str, port_base: int = DEFAULT_PORT_BASE) -> str:
    """The starter aimed at the lab listening from `port_base`, its comments naming `name`: no
    secret to set, no manual step; `drill run NAME --yes` passes against a `drill lab up` lab."""
    check_name(name)
    file = shlex.quote(name)
    urls = lab_urls(port_base)
    control, front, kv = urls["control"], urls["front"], urls["kv"]
    last = port_base + max(PORTS.values())
    return f"""\
{SCHEMA_LINE}
# A drill against drill's embedded lab (`drill lab up`: simulated services on 127.0.0.1:{port_base}-{last}).
# The lab's primary site goes dark; the operators promote the key-value replica and switch the web
# front to the secondary. drill times each asset's outage, measures the orders lost (RPO), pages the
# on-call (the lab acknowledges by itself), fails back and checks everything is back to normal.
# It runs as it is:
#   drill validate {file} && drill plan {file}
#   drill run --dry-run {file}     # readiness only: probes answer, endpoints reachable, nothing changes
#   drill run {file} --yes         # the drill itself: exit 0 when every target is met
# Editor help: run `drill schema > drill.schema.json` in this file's folder (the first line names it).
apiVersion: drill/v1
kind: Playbook

metadata:
  name: lab-site-loss               # a slug: letters, digits, '-', '.', '_'
  owner: you@example.com            # who is accountable for the drill
  description: Lose the lab's primary site, fail over to the secondary, and time the recovery.
  environment: drill lab on 127.0.0.1   # shown when `drill run` asks before changing anything
  test_type: functional             # tabletop | functional | full-scale | switchover
  objectives:
    - Serve the web front from the secondary within 10 s.
    - Lose at most 2 s of acknowledged orders when the key-value store fails over.
  success_criteria:
    - Every asset meets its RTO and RPO targets, and the on-call acknowledges in time.
  participants:
    - {{name: You, role: drill-lead}}

settings:
  interval: 200ms                   # how often each probe runs (a probe may override it)
  timeout: 500ms                    # deadline of one probe run
  fall: 2                           # failures in a row before an asset counts as down
  rise: 2                           # successes in a row before it counts as up again
  unattended: true                  # nobody needs to be at a terminal: a manual step would be an error

tiers:                              # list order is priority: the first recovers first
  - {{name: data, rto: 5s, rpo: 2s, description: the order store}}
  - {{name: customer-facing, rto: 10s, description: the public web front (it keeps no data)}}

contacts:
  chains:
    lab-oncall:
      respond_within: 1m            # the chain's target for a first acknowledgement
      contacts:
        # The lab's pager webhook acknowledges each page through its ack link 0.7 s later.
        - {{name: Lab on-call, via: webhook, url: "{control}/hooks/pager", ack_within: 30s}}

assets:
  - id: orders-kv
    tier: data
    contact_chain: lab-oncall
    probes:
      - name: canary                # writes a numbered key every interval, reads back what survived: the RPO
        kv: {{url: "{kv}", canary: true}}
  - id: web
    tier: customer-facing
    depends_on: [orders-kv]
    contact_chain: lab-oncall
    probes:
      - name: front
        http: {{url: "{front}/health", expect_status: 200}}

scenario:
  - name: steady traffic            # the canary writes for a while first: the loss has history to show
    pause: 1s
  - name: lose the primary site     # the lab's web primary and kv master crash
    action: {{http: {{url: "{control}/control/disaster"}}}}
    inject: true                    # t_inject: every RTO counts from the start of this step
  - name: outage detected
    wait_for: {{asset: web, state: down, within: 5s}}
  - name: promote the kv replica    # what it had not yet applied is lost: the RPO
    action: {{http: {{url: "{control}/control/kv/failover"}}}}
  - name: switch the front to the secondary
    action: {{http: {{url: "{control}/control/failover"}}}}
    retry: {{attempts: 3, wait: 1s}}
  - name: everything serves again
    wait_for: {{all_assets: true, state: up, within: 20s}}

stop_conditions:                    # abort (and roll back) when something stays down too long
  - {{name: orders store lost for good, asset: orders-kv, down_for: 30s}}

rollback:                           # fail back after the drill, so the lab is ready for the next one
  - name: repair the primary site
    action: {{http: {{url: "{control}/control/restore"}}}}
  - name: fail the front back
    action: {{http: {{url: "{control}/control/failback"}}}}
  - name: fail the kv store back
    action: {{http: {{url: "{control}/control/kv/failback"}}}}
"""
