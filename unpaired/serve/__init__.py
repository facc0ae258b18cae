"""Web pages on top of ``unpaired.inference``: translate an upload in the browser (``translate_app``), and a
blinded A/B study of several runs with votes kept in SQLite (``study`` lays it out and reports it,
``study_app`` serves it to raters).

Layer 4 (see DESIGN.md): imports ``unpaired.inference`` and below, never ``unpaired.cli``. The web framework
(Starlette, served by uvicorn) is the optional ``unpaired[serve]`` extra, imported only by the app modules, so
``study`` (layout, votes, report) works without it.
"""
