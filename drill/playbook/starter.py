"""The commented starter playbook `drill init` writes; a test checks that it validates."""

STARTER_PLAYBOOK = """\
# A drill playbook: what to watch, the recovery targets, who to page, and what to do.
# Check it with `drill validate playbook.yaml`, see the plan with `drill plan playbook.yaml`.
# Editor help: `drill schema > drill.schema.json`, then put this first line in the file:
# yaml-language-server: $schema=drill.schema.json
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
        - {name: Ana Silva, via: webhook, url: "${env:PAGER_URL}", ack_within: 5m}
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
      - name: health
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
  - name: stop the primary
    action: {command: {argv: [echo, "stop the primary here"]}}
  - name: wait for detection
    wait_for: {asset: web, state: down, within: 2m}
  - name: fail over
    action: {http: {url: "http://127.0.0.1:9000/failover", method: POST}}
    timeout: 30s
    retry: {attempts: 3, wait: 5s}
  - name: wait for recovery
    wait_for: {all_assets: true, state: up, within: 10m}
  - name: check the status page
    manual: Does the status page show the maintenance banner?
    timeout: 10m

stop_conditions:                    # abort (and roll back) when something stays down too long
  - {name: database outage, asset: database, down_for: 15m}

rollback:
  - name: fail back
    action: {http: {url: "http://127.0.0.1:9000/failback", method: POST}}
"""
