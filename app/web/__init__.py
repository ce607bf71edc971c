"""Analyst web view served by the worker's Faust web server: live alerts, labelling, accounts.

Faust autodiscovers this package (``app.kafka.faust_app``), which registers the views in
:mod:`app.web.views`. The other modules are pure code.
"""
