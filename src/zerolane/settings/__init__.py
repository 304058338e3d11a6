"""Settings types: what each part of zerolane is configured with, validated on the way in.

The core and the enforcement points receive these types and never read a configuration
file themselves: :mod:`zerolane.config` (the deployment's ``zerolane.toml``), the
gateways' and forward-auth's readers turn files into them. Each type is a frozen
dataclass that pydantic checks a document against (its validator is built when a first
document is read; built in code, it is not checked): an unknown key, a wrong type or a
value out of bounds is refused;
:func:`zerolane.settings.validate.validate` reports every problem of a document at
once, one line each, with the file and the value's dotted name.

:mod:`~zerolane.settings.validate`  the strict scalar types, refusals and their reason ids
:mod:`~zerolane.settings.identity`  ``[svid]`` and trusted JWT issuers (the core's)
:mod:`~zerolane.settings.listener`  ``[tls]`` and ``[http]`` (every listener's)
:mod:`~zerolane.settings.detection` ``[detection]``: the detectors and their thresholds
"""
