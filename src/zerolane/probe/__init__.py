"""Control testing: ``zerolane probe`` attacks a running deployment the way an adversary
would (replay, reuse, delegate, forge, confuse the path) and reports what held.

The probe is an attacker driving the main path from outside: it holds only what a
legitimate client of the target holds (a :class:`~zerolane.probe.credentials.CredentialSource`
says how to get it), sends each scenario's legitimate twin first and then the attack,
and keeps both exchanges as evidence, secrets masked. Nothing here imports a server: a
zerolane home is wired in by the command line (``zerolane.cli.probe``).
"""
