"""The agency console: server-rendered pages on the GOV.UK Design System, served by the gateway over the
same mutual TLS as its API. The agency is the browser's client certificate.

* children's services (``/la/...``): inbox, referral, decision, chronology, possible matches;
* schools (``/school``): Operation Encompass notifications to acknowledge, their referrals and outcomes;
* police forces (``/police``): their notices' delivery status and late-submission figures;
* the gateway's operators (``/operator``): unroutable messages, dead letters, delivery health.

:mod:`gateway.web.console.views` is the blueprint; :mod:`~gateway.web.console.queries` reads what the
pages show; :mod:`~gateway.web.console.pictures` lays out the SVG timeline and chart.
"""
