"""An agent calling the sample tool API through the HTTP gateway (gateway.toml).

    .venv/bin/python examples/gateway/agent.py [--token-file F] [--control-plane U] [--gateway U]

It attests with the join token in ``token`` (single use: make a new one for each run),
opens a task under the playbook examples/playbooks/quarterly-report.yaml for the
gateway's audience, and sends two requests through the gateway: a report read (allowed:
the gateway adds the finance API's per-task key, which the agent never holds) and a
report delete (refused: not in the playbook, it never reaches the API). Leaving the task
block completes the task. Reference: docs/gateway.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zerolane.sdk import Agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-file", type=Path, default=Path("token"))
    parser.add_argument("--control-plane", default="http://127.0.0.1:8700")
    parser.add_argument("--gateway", default="http://127.0.0.1:8800")
    options = parser.parse_args()
    agent = Agent.attest(options.control_plane, join_token=options.token_file.read_text().strip())
    with agent.task(
        playbook="quarterly-report", intent="Q3 report", audience=[options.gateway]
    ) as task:
        for method in ("GET", "DELETE"):
            response = task.request(method, f"{options.gateway}/finance/reports/q3")
            answer = response.json()
            if response.is_success:  # the API says which task's key the gateway sent
                whose = "this" if answer["served_to_task"] == task.task_id else "another"
                said = f"revenue {answer['revenue']}, served to {whose} task"
            else:
                said = answer["reason"]
            print(method, "/finance/reports/q3:", response.status_code, said)


if __name__ == "__main__":
    main()
