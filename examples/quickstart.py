from pathlib import Path

from zerolane.sdk import Agent

agent = Agent.attest(
    "http://127.0.0.1:8700",
    join_token=Path("token").read_text().strip(),  # single use: attesting again needs a new one
    enforcement_point=Path("edge").read_text().strip(),
)
with agent.task(playbook="quarterly-report", intent="Compile the Q3 report") as task:
    for method in ("GET", "DELETE"):
        decision = task.decide(method, "https://finance-api.internal/finance/reports/q3")
        print(method, "allow" if decision.allowed else "deny", *decision.reasons)
# leaving the block completes the task: its token is refused from then on
decision = task.decide("GET", "https://finance-api.internal/finance/reports/q3")
print("GET after completion:", "allow" if decision.allowed else "deny", *decision.reasons)
